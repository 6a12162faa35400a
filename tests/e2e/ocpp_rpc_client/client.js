// An independent station: ocpp-rpc's RPCClient in strict mode validates every message we send
// and every reply the central system gives against the official OCA schemas.
//   node client.js ws://127.0.0.1:9000/ocpp STATION ocpp1.6|ocpp2.0.1
const { RPCClient } = require('ocpp-rpc');
const [endpoint, identity, protocol] = process.argv.slice(2);
const now = () => new Date().toISOString();

async function v16(cli) {
    const boot = await cli.call('BootNotification', { chargePointVendor: 'rpc', chargePointModel: 'strict' });
    if (boot.status !== 'Accepted') throw new Error('boot ' + JSON.stringify(boot));
    await cli.call('Heartbeat', {});
    await cli.call('StatusNotification', { connectorId: 1, errorCode: 'NoError', status: 'Available', timestamp: now() });
    const auth = await cli.call('Authorize', { idTag: 'RPC-1' });
    if (auth.idTagInfo.status !== 'Accepted') throw new Error('authorize ' + JSON.stringify(auth));
    const start = await cli.call('StartTransaction', { connectorId: 1, idTag: 'RPC-1', meterStart: 0, timestamp: now() });
    await cli.call('MeterValues', { connectorId: 1, transactionId: start.transactionId, meterValue: [{ timestamp: now(), sampledValue: [{ value: '10' }] }] });
    await cli.call('StopTransaction', { transactionId: start.transactionId, meterStop: 10, timestamp: now(), idTag: 'RPC-1' });
    await cli.call('DataTransfer', { vendorId: 'rpc' });
    await cli.call('FirmwareStatusNotification', { status: 'Idle' });
    await cli.call('DiagnosticsStatusNotification', { status: 'Idle' });
}

async function v201(cli) {
    const boot = await cli.call('BootNotification', { reason: 'PowerUp', chargingStation: { vendorName: 'rpc', model: 'strict' } });
    if (boot.status !== 'Accepted') throw new Error('boot ' + JSON.stringify(boot));
    await cli.call('Heartbeat', {});
    await cli.call('StatusNotification', { timestamp: now(), connectorStatus: 'Available', evseId: 1, connectorId: 1 });
    const idToken = { idToken: 'RPC-1', type: 'ISO14443' };
    const auth = await cli.call('Authorize', { idToken });
    if (auth.idTokenInfo.status !== 'Accepted') throw new Error('authorize ' + JSON.stringify(auth));
    const tx = { transactionId: 'rpc-tx-1' };
    await cli.call('TransactionEvent', { eventType: 'Started', timestamp: now(), triggerReason: 'Authorized', seqNo: 0, transactionInfo: tx, idToken, evse: { id: 1, connectorId: 1 } });
    await cli.call('TransactionEvent', { eventType: 'Updated', timestamp: now(), triggerReason: 'MeterValuePeriodic', seqNo: 1, transactionInfo: tx, meterValue: [{ timestamp: now(), sampledValue: [{ value: 5 }] }] });
    await cli.call('TransactionEvent', { eventType: 'Ended', timestamp: now(), triggerReason: 'StopAuthorized', seqNo: 2, transactionInfo: { ...tx, stoppedReason: 'Local' } });
    await cli.call('MeterValues', { evseId: 1, meterValue: [{ timestamp: now(), sampledValue: [{ value: 7 }] }] });
    await cli.call('SecurityEventNotification', { type: 'StartupOfTheDevice', timestamp: now() });
    await cli.call('LogStatusNotification', { status: 'Idle' });
    await cli.call('DataTransfer', { vendorId: 'rpc' });
}

(async () => {
    const cli = new RPCClient({ endpoint, identity, protocols: [protocol], strictMode: true, reconnect: false, callTimeoutMs: 10000 });
    await cli.connect();
    if (cli.protocol !== protocol) throw new Error('negotiated ' + cli.protocol);
    await (protocol === 'ocpp1.6' ? v16(cli) : v201(cli));
    await cli.close();
    console.log(identity, protocol, 'flows ok');
})().catch((err) => { console.error(err); process.exit(1); });
