"""`HttpSearchEngine`: the SearchEngine interface over a `searchgym serve` (or any Search-R1) service,
so rollout workers on many machines share one index."""

from __future__ import annotations

import time
from typing import Any

import httpx

from searchgym.index.base import SearchEngine
from searchgym.types import Document, SearchHit


class SearchServiceError(RuntimeError):
    """The service refused a request (4xx) or stayed unreachable after all retries."""


class HttpSearchEngine(SearchEngine):
    name = "http"

    def __init__(
        self,
        base_url: str,
        timeout: float = 10.0,
        retries: int = 3,
        backoff: float = 0.2,
        max_batch: int = 512,
    ):
        """`retries` extra attempts on connection errors, timeouts and 5xx, sleeping backoff * 2**attempt."""
        self.base_url = base_url.rstrip("/")
        self.retries, self.backoff, self.max_batch = retries, backoff, max_batch
        self._http = httpx.Client(base_url=self.base_url, timeout=timeout)

    def _post(self, path: str, payload: dict[str, Any]) -> dict[str, Any]:
        for attempt in range(self.retries + 1):
            try:
                r = self._http.post(path, json=payload)
            except httpx.TransportError as e:
                problem = f"{type(e).__name__}: {e}"
            else:
                if r.status_code < 400:
                    return r.json()
                if r.status_code < 500:
                    try:
                        detail = r.json().get("detail", r.text)
                    except ValueError:
                        detail = r.text
                    raise SearchServiceError(
                        f"{self.base_url}{path} refused the request ({r.status_code}): {detail}"
                    )
                problem = f"HTTP {r.status_code}: {r.text[:200]}"
            if attempt < self.retries:
                time.sleep(self.backoff * 2**attempt)
        raise SearchServiceError(
            f"{self.base_url}{path} failed after {self.retries + 1} attempts ({problem})"
        )

    def search(self, query: str, k: int = 5) -> list[SearchHit]:
        return self.batch_search([query], k)[0]

    def batch_search(self, queries: list[str], k: int = 5) -> list[list[SearchHit]]:
        out: list[list[SearchHit]] = []
        for start in range(0, len(queries), self.max_batch):
            chunk = queries[start : start + self.max_batch]
            data = self._post("/retrieve", {"queries": chunk, "topk": k, "return_scores": True})
            out.extend([_hit(item) for item in hits] for hits in data["result"])
        return out

    def access(self, url: str) -> Document | None:
        (page,) = self._post("/access", {"urls": [url]})["result"]
        if not page["found"]:
            return None
        title, _, text = page["contents"].partition("\n")
        return Document(id=page.get("id", url), url=page["url"], title=page["title"] or title, text=text)

    def health(self) -> dict[str, Any]:
        r = self._http.get("/health")
        r.raise_for_status()
        return r.json()

    def close(self) -> None:
        self._http.close()


def _hit(item: dict[str, Any]) -> SearchHit:
    doc = item["document"]
    title, _, text = doc["contents"].partition("\n")
    return SearchHit(
        doc_id=str(doc["id"]),
        url=doc.get("url", f"corpus://{doc['id']}"),
        title=doc.get("title", title),
        text=text,
        score=float(item.get("score", 0.0)),
    )
