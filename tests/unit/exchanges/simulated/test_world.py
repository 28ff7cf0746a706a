from decimal import Decimal as D

from titan_grpc.domain import Symbol
from titan_grpc.exchanges.simulated import SimulatedWorld

BTC_USDT = Symbol("BTC", "USDT")


def snapshot(world: SimulatedWorld) -> list[object]:
    return [world.engine(v).book(s, 50) for v in world.venue_names for s in world.engine(v).markets]


def test_same_seed_same_market_after_the_same_ticks() -> None:
    first, second = SimulatedWorld(123), SimulatedWorld(123)
    first.advance(25)
    second.advance(25)
    assert snapshot(first) == snapshot(second)

    def trades(world: SimulatedWorld) -> list[object]:
        return [
            (t.trade_id, t.price, t.quantity, t.taker_side)
            for venue in world.venue_names
            for t in world.engine(venue).public_trades(BTC_USDT, 50)
        ]

    assert trades(first) == trades(second)
    assert len(trades(first)) > 25


def test_seed_is_pinned_so_exact_values_survive_refactors() -> None:
    bids, asks, _ = SimulatedWorld(42).engine("binance").book(BTC_USDT, 1)
    assert (bids[0].price, asks[0].price) == (D("42997.85"), D("43002.15"))


def test_different_seeds_and_ticks_move_prices() -> None:
    world = SimulatedWorld(1)
    before = world.engine("binance").book(BTC_USDT, 1)
    world.advance(10)
    assert world.engine("binance").book(BTC_USDT, 1) != before
    assert SimulatedWorld(2).engine("binance").book(BTC_USDT, 1) != SimulatedWorld(1).engine(
        "binance"
    ).book(BTC_USDT, 1)


def test_venues_keep_their_own_offset_and_spread_around_the_reference() -> None:
    world = SimulatedWorld(5)
    world.advance(50)
    reference = world.reference.price(BTC_USDT)
    spreads = {}
    for venue in ("binance", "coinbase", "kucoin"):
        bids, asks, _ = world.engine(venue).book(BTC_USDT, 1)
        mid = (bids[0].price + asks[0].price) / 2
        assert abs(mid - reference) / reference < D("0.001")  # within 10 bps
        assert bids[0].price < asks[0].price  # never crossed
        spreads[venue] = asks[0].price - bids[0].price
    assert spreads["binance"] < spreads["coinbase"] < spreads["kucoin"]


def test_books_respect_tick_and_step_sizes() -> None:
    world = SimulatedWorld(9)
    world.advance(3)
    for venue in world.venue_names:
        engine = world.engine(venue)
        for symbol, market in engine.markets.items():
            bids, asks, _ = engine.book(symbol, 50)
            for level in (*bids, *asks):
                assert level.price % market.tick_size == 0
                assert level.quantity % market.step_size == 0
            assert [lvl.price for lvl in bids] == sorted((lvl.price for lvl in bids), reverse=True)
            assert [lvl.price for lvl in asks] == sorted(lvl.price for lvl in asks)
