"""A bucket listing that lags a new pipeline never takes its model away from a worker."""

from __future__ import annotations

from services.serve.models import ModelCache
from shared.artifacts import load_model
from shared.layout import MODELS, alias_key
from shared.storage import Store
from tests.conftest import SIGNING_KEY
from tests.integration.serve_support import deploy, fit_iris, iris_frame


class LaggingStore(Store):
    """The real store, whose listing of `models/` has not caught up with `hidden` yet."""

    hidden: set[str] = set()

    def children(self, prefix: str) -> list[str]:
        names = super().children(prefix)
        return [n for n in names if n not in self.hidden] if prefix == MODELS else names


def test_a_model_the_listing_misses_keeps_serving_until_its_alias_is_gone(store: Store) -> None:
    deploy(
        store,
        "iris",
        fit_iris(),
        iris_frame()[0],
        task="classification",
        target="species",
        run_id="r1",
    )
    lagging = LaggingStore(store.client, store.bucket)
    cache = ModelCache(lagging, loader=load_model, signing_key=SIGNING_KEY.encode())
    assert cache.get("iris").version == 1  # loaded on demand, as a first request does

    lagging.hidden = {"iris"}
    assert cache.refresh() == {"iris": 1}  # the listing left it out; its alias says keep it
    assert cache.get("iris").version == 1

    store.delete(alias_key("iris", "production"))
    assert cache.refresh() == {}  # gone for good: no alias any more
