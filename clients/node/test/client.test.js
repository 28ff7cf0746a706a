// Starts the Python server on a free loopback port and checks the answers through the
// Node client. Uses node's built-in test runner (npm test).
"use strict";

const { test, before, after } = require("node:test");
const assert = require("node:assert/strict");
const { spawn } = require("node:child_process");
const fs = require("node:fs");
const net = require("node:net");
const os = require("node:os");
const path = require("node:path");
const grpc = require("@grpc/grpc-js");
const { connect } = require("../client");

const ROOT = path.resolve(__dirname, "..", "..", "..");
const PYTHON = process.env.TITAN_PYTHON || path.join(ROOT, ".venv", "bin", "python");

let server;
let titan;

function freePort() {
  return new Promise((resolve, reject) => {
    const probe = net.createServer();
    probe.unref();
    probe.on("error", reject);
    probe.listen(0, "127.0.0.1", () => {
      const { port } = probe.address();
      probe.close(() => resolve(port));
    });
  });
}

before(async () => {
  const port = await freePort();
  const journal = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "titan-node-")), "journal.sqlite3");
  server = spawn(PYTHON, ["-m", "titan_grpc", "serve", "--address", `127.0.0.1:${port}`, "--env-file", ""], {
    cwd: ROOT,
    env: { ...process.env, TITAN_SIM_TICK_MS: "50", TITAN_JOURNAL_PATH: journal, USE_REAL_EXCHANGES: "false" },
    stdio: ["ignore", "ignore", "pipe"],
  });
  server.stderr.on("data", () => {}); // drain the request log
  titan = connect(`127.0.0.1:${port}`);
  await titan.ready(60000);
});

after(async () => {
  titan.close();
  const exited = new Promise((resolve) => server.on("exit", resolve));
  server.kill("SIGTERM");
  assert.equal(await exited, 0);
});

test("status lists the simulated venues", async () => {
  const status = await titan.call("GetStatus", {});
  assert.equal(status.mode, "MODE_SIMULATED");
  assert.deepEqual(status.venues.map((v) => v.exchange), ["binance", "coinbase", "kucoin", "mock"]);
});

test("market data is a simulated ticker with decimal strings", async () => {
  const { ticker } = await titan.call("GetMarketData", { symbol: "btcusdt", exchange: "binance" });
  assert.equal(ticker.symbol, "BTC-USDT");
  assert.equal(ticker.source.simulated, true);
  assert.match(ticker.bid, /^\d+(\.\d+)?$/);
  assert.ok(Number(ticker.bid) < Number(ticker.ask));
});

test("aggregated market data spans the venues", async () => {
  const answer = await titan.call("GetAggregatedMarketData", { symbol: "ETH-USDT", exchanges: [] });
  assert.deepEqual(answer.tickers.map((t) => t.source.exchange), ["binance", "coinbase", "kucoin"]);
  assert.ok(["binance", "coinbase", "kucoin"].includes(answer.best_bid.exchange));
});

test("places and cancels a simulated order", async () => {
  const client_order_id = `node-${Date.now()}`;
  const { order } = await titan.call("PlaceOrder", {
    exchange: "binance",
    symbol: "BTC-USDT",
    side: "SIDE_BUY",
    type: "ORDER_TYPE_LIMIT",
    quantity: "0.001",
    price: "10000",
    client_order_id,
  });
  assert.equal(order.status, "ORDER_STATUS_NEW");
  assert.equal(order.client_order_id, client_order_id);
  const cancelled = await titan.call("CancelOrder", { exchange: "binance", client_order_id });
  assert.equal(cancelled.order.status, "ORDER_STATUS_CANCELED");
});

test("a bad request is INVALID_ARGUMENT naming the field", async () => {
  await assert.rejects(
    titan.call("PlaceOrder", { exchange: "binance", symbol: "BTC-USDT", side: "SIDE_BUY", type: "ORDER_TYPE_LIMIT", quantity: "abc", price: "1" }),
    (error) => error.code === grpc.status.INVALID_ARGUMENT && error.details.startsWith("quantity:"),
  );
});

test("streams N quotes", async () => {
  const wanted = 5;
  const call = titan.stream("StreamQuotes", { symbols: ["BTC-USDT"], exchanges: ["binance", "kucoin"] });
  const quotes = [];
  await new Promise((resolve, reject) => {
    call.on("data", (message) => {
      if (message.quote) quotes.push(message.quote);
      if (quotes.length === wanted) {
        call.cancel();
        resolve();
      }
    });
    call.on("error", (error) => (error.code === grpc.status.CANCELLED ? resolve() : reject(error)));
  });
  assert.equal(quotes.length, wanted);
  assert.ok(quotes.every((q) => q.symbol === "BTC-USDT" && q.source.simulated));
  assert.deepEqual(new Set(quotes.map((q) => q.exchange)), new Set(["binance", "kucoin"]));
});

test("markets carry the trading rules and the fee model", async () => {
  const { markets, errors } = await titan.call("GetMarkets", { exchanges: ["kucoin"], symbols: ["BTC-USDT"] });
  assert.deepEqual(errors, []);
  assert.equal(markets[0].venue_symbol, "BTC-USDT");
  assert.equal(markets[0].fee_source, "FEE_SOURCE_DEFAULT");
  assert.match(markets[0].taker_fee_rate, /^0\.\d+$/);
});

test("open orders and the kill switch", async () => {
  for (const n of [1, 2]) {
    await titan.call("PlaceOrder", {
      exchange: "mock",
      symbol: "ETH-USDT",
      side: "SIDE_BUY",
      type: "ORDER_TYPE_LIMIT",
      quantity: "0.01",
      price: "1000",
      client_order_id: `node-kill-${n}-${Date.now()}`,
    });
  }
  const open = await titan.call("ListOpenOrders", { exchanges: ["mock"], symbol: "ETH-USDT" });
  assert.equal(open.orders.length, 2);
  assert.ok(open.orders.every((o) => o.placed_by_gateway));
  const { results } = await titan.call("CancelAllOrders", { exchanges: ["mock"], symbol: "ETH-USDT" });
  assert.equal(results[0].canceled_orders.length, 2);
  const after = await titan.call("ListOpenOrders", { exchanges: ["mock"], symbol: "ETH-USDT" });
  assert.equal(after.orders.length, 0);
});

test("a quote-sized market order and paged fills", async () => {
  for (const n of [1, 2, 3]) {
    const { order } = await titan.call("PlaceOrder", {
      exchange: "mock",
      symbol: "BTC-USDT",
      side: "SIDE_BUY",
      type: "ORDER_TYPE_MARKET",
      quote_quantity: "50",
      client_order_id: `node-quote-${n}-${Date.now()}`,
    });
    assert.equal(order.status, "ORDER_STATUS_FILLED");
    assert.ok(Number(order.filled_quote_quantity) <= 50);
  }
  const ids = [];
  for await (const fill of titan.paged("ListTrades", { exchange: "mock", symbol: "BTC-USDT", page_size: 1 }, "trades")) {
    ids.push(fill.trade_id);
  }
  assert.ok(ids.length >= 3);
  assert.equal(new Set(ids).size, ids.length);
});
