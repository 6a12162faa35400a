"""Real frames to start fuzzing from: what stations of each version send, good and bad."""

VERSIONS = ("1.6", "2.0.1", "2.1")
NOW = "2026-01-01T00:00:00Z"

BOOT_2X = ('{"reason": "PowerUp", "chargingStation": {"model": "M", "vendorName": "V", '
           '"firmwareVersion": "1.0", "modem": {"iccid": "89", "imsi": "26"}}}')
STATUS_2X = (f'{{"timestamp": "{NOW}", "connectorStatus": "Available", "evseId": 1, '
             '"connectorId": 1}')
METER_2X = (f'{{"evseId": 1, "meterValue": [{{"timestamp": "{NOW}", "sampledValue": '
            '[{"value": 1234.5, "measurand": "Energy.Active.Import.Register", '
            '"unitOfMeasure": {"unit": "Wh"}}]}]}')
TX_2X = (f'{{"eventType": "Started", "timestamp": "{NOW}", "triggerReason": "Authorized", '
         '"seqNo": 0, "transactionInfo": {"transactionId": "tx-1", "chargingState": '
         '"Charging"}, "idToken": {"idToken": "TAG-1", "type": "ISO14443"}, "evse": '
         '{"id": 1, "connectorId": 1}, "customData": {"vendorId": "acme", "x": [1, {"y": 2}]}}')

COMMON = [
    '[2, "m1", "Heartbeat", {}]',
    "not json",
    "[]",
    '{"a": 1}',
    '[7, "m1", "Heartbeat", {}]',
    '["2", "m1", "Heartbeat", {}]',
    '[2, 17, "Heartbeat", {}]',
    '[2, "m1", "Heartbeat"]',
    '[2, "m1", "MakeCoffee", {}]',
    '[2, "m1", "Heartbeat", {"surprise": [1, 2, {"deep": [[[]]]}]}]',
    '[3, "m9", {"status": "Accepted"}]',
    '[4, "m9", "GenericError", "nope", {}]',
    '[6, "s1", "Heartbeat", {}]',
    '[5, "s2", "GenericError", "", {}]',
]

# What well-behaved stations of each version send.
GOOD: dict[str, list[str]] = {
    "1.6": [
        '[2, "b1", "BootNotification", {"chargePointVendor": "V", "chargePointModel": "M", '
        '"firmwareVersion": "1.0"}]',
        '[2, "s1", "StatusNotification", {"connectorId": 1, "errorCode": "NoError", '
        '"status": "Available"}]',
        '[2, "a1", "Authorize", {"idTag": "TAG-1"}]',
        f'[2, "t1", "StartTransaction", {{"connectorId": 1, "idTag": "TAG-1", '
        f'"meterStart": 0, "timestamp": "{NOW}"}}]',
        f'[2, "t2", "StopTransaction", {{"transactionId": 1, "meterStop": 1500, '
        f'"timestamp": "{NOW}", "reason": "Local"}}]',
        f'[2, "v1", "MeterValues", {{"connectorId": 1, "transactionId": 1, "meterValue": '
        f'[{{"timestamp": "{NOW}", "sampledValue": [{{"value": "1234.5", '
        '"measurand": "Energy.Active.Import.Register", "unit": "Wh"}]}]}]',
        '[2, "d1", "DataTransfer", {"vendorId": "acme", "messageId": "x", "data": "{}"}]',
        '[2, "f1", "FirmwareStatusNotification", {"status": "Installed"}]',
        '[2, "g1", "DiagnosticsStatusNotification", {"status": "Uploaded"}]',
    ],
    "2.0.1": [
        f'[2, "b1", "BootNotification", {BOOT_2X}]',
        f'[2, "s1", "StatusNotification", {STATUS_2X}]',
        '[2, "a1", "Authorize", {"idToken": {"idToken": "TAG-1", "type": "ISO14443"}}]',
        f'[2, "t1", "TransactionEvent", {TX_2X}]',
        f'[2, "v1", "MeterValues", {METER_2X}]',
        '[2, "d1", "DataTransfer", {"vendorId": "acme", "data": {"any": ["json", 1]}}]',
        f'[2, "n1", "NotifyEvent", {{"generatedAt": "{NOW}", "seqNo": 0, "eventData": '
        f'[{{"eventId": 1, "timestamp": "{NOW}", "trigger": "Alerting", "actualValue": '
        '"1", "eventNotificationType": "HardWiredNotification", "component": {"name": '
        '"EVSE"}, "variable": {"name": "Power"}}]}]',
        '[2, "r1", "ReportChargingProfiles", {"requestId": 1, "chargingLimitSource": '
        '"CSO", "evseId": 1, "chargingProfile": [{"id": 1, "stackLevel": 0, '
        '"chargingProfilePurpose": "TxProfile", "chargingProfileKind": "Absolute", '
        '"chargingSchedule": [{"id": 1, "chargingRateUnit": "A", '
        '"chargingSchedulePeriod": [{"startPeriod": 0, "limit": 16.0}]}]}]}]',
    ],
    "2.1": [
        f'[2, "b1", "BootNotification", {BOOT_2X}]',
        f'[2, "s1", "StatusNotification", {STATUS_2X}]',
        f'[2, "t1", "TransactionEvent", {TX_2X}]',
        f'[2, "v1", "MeterValues", {METER_2X}]',
        f'[6, "p1", "NotifyPeriodicEventStream", {{"id": 1, "pending": 0, '
        f'"basetime": "{NOW}", "data": [{{"t": 0.5, "v": "230"}}]}}]',
        '[2, "a1", "Authorize", {"idToken": {"idToken": "TAG-1", "type": "ISO14443"}}]',
    ],
}

SEEDS = {version: COMMON + frames for version, frames in GOOD.items()}
