"""Serverless mode: a gateway holds the stations' websockets, csms answers HTTP requests.

Modelled on AWS API Gateway WebSocket APIs, so that the real thing works unchanged:

    station ==ws==> gateway --POST /gateway/connect|message|disconnect--> backend (csms)
    station <==ws== gateway <--POST|DELETE|GET /@connections/{id}-------- backend (csms)

The gateway is `csms gateway` (`csms.serverless.gateway`) or API Gateway invoking a Lambda
function (`csms.serverless.aws_lambda`). Backends (`csms serve --mode gateway`) keep no
socket and no station in memory: each station's connection (gateway endpoint, connection
id, version) lives in Redis, so any backend instance serves any request
(`csms.cluster.gateway`). The HTTP contract between the two is in `contract`.
"""
