// A small Node.js client for TITAN's ExchangeService, loading protos/ directly.
//
//   const { connect } = require("./client");
//   const titan = connect("127.0.0.1:50051", { token: process.env.TITAN_TOKEN });
//   const status = await titan.call("GetStatus", {});
//   for await (const message of titan.stream("StreamQuotes", { symbols: ["BTC-USDT"] })) { ... }
//   for await (const fill of titan.paged("ListTrades", { exchange: "mock", page_size: 1000 }, "trades")) { ... }
"use strict";

const path = require("node:path");
const grpc = require("@grpc/grpc-js");
const protoLoader = require("@grpc/proto-loader");

const PROTO_ROOT = path.resolve(__dirname, "..", "..", "protos");
// google/api/annotations.proto (the HTTP routes), vendored for offline builds.
const GOOGLEAPIS_ROOT = path.resolve(__dirname, "..", "..", "third_party", "googleapis");

function loadService() {
  const definition = protoLoader.loadSync("titan/v1/exchange.proto", {
    includeDirs: [PROTO_ROOT, GOOGLEAPIS_ROOT],
    keepCase: true, // field names as in the .proto (snake_case)
    longs: String,
    enums: String, // enum values by name, e.g. "SIDE_BUY"
    defaults: true,
    oneofs: true,
  });
  return grpc.loadPackageDefinition(definition).titan.v1.ExchangeService;
}

function connect(address, { token, rootCerts, deadlineMs = 10000 } = {}) {
  const Service = loadService();
  const credentials = rootCerts
    ? grpc.credentials.createSsl(rootCerts)
    : grpc.credentials.createInsecure();
  const client = new Service(address, credentials);

  function metadata() {
    const md = new grpc.Metadata();
    if (token) md.set("authorization", `Bearer ${token}`);
    return md;
  }

  function call(method, request) {
    return new Promise((resolve, reject) => {
      const deadline = new Date(Date.now() + deadlineMs);
      client[method](request, metadata(), { deadline }, (error, response) =>
        error ? reject(error) : resolve(response),
      );
    });
  }

  function stream(method, request) {
    return client[method](request, metadata());
  }

  // Every item of a paged list RPC (ListTrades, ListLedgerEntries, ListOrders), following
  // next_page_token until the last page; `field` names the repeated field of the answer.
  async function* paged(method, request, field) {
    let page_token = "";
    do {
      const answer = await call(method, { ...request, page_token });
      yield* answer[field];
      page_token = answer.next_page_token;
    } while (page_token);
  }

  function ready(timeoutMs = 30000) {
    return new Promise((resolve, reject) =>
      client.waitForReady(new Date(Date.now() + timeoutMs), (error) =>
        error ? reject(error) : resolve(),
      ),
    );
  }

  return { call, stream, paged, ready, close: () => client.close(), raw: client };
}

module.exports = { connect, loadService, PROTO_ROOT };

if (require.main === module) {
  // node client.js [address] [symbol]: a quick look at a running server.
  const address = process.argv[2] || "127.0.0.1:50051";
  const symbol = process.argv[3] || "BTC-USDT";
  const titan = connect(address, { token: process.env.TITAN_TOKEN });
  (async () => {
    const status = await titan.call("GetStatus", {});
    console.log("mode", status.mode, "venues", status.venues.map((v) => v.exchange).join(", "));
    const { ticker } = await titan.call("GetMarketData", { symbol, exchange: "binance" });
    console.log(`${ticker.symbol} bid ${ticker.bid} ask ${ticker.ask} simulated=${ticker.source.simulated}`);
    titan.close();
  })().catch((error) => {
    console.error(error.message);
    process.exit(1);
  });
}
