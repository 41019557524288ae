"""`HttpSearchEngine`: the SearchEngine interface over a `searchgym serve` (or any Search-R1) service,
so rollout workers on many machines share one index.

Batches are split to fit the server: on first use the client reads the limits `searchgym serve` reports on
/health (`max_queries`, `max_results`, `max_topk`) and sends at most min(max_batch, max_queries,
max_results // k) queries per request. A server without /health (Search-R1's own) gets `max_batch`.
"""

from __future__ import annotations

import json
from typing import Any

import httpx

from searchgym.http import HTTPFailure, Retry, post_json
from searchgym.index.base import SearchEngine
from searchgym.types import Document, SearchHit


class SearchServiceError(HTTPFailure):
    """The search service refused a request (4xx), stayed unreachable after all retries, or answered a reply
    that does not fit the request."""


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
        """`retries` extra attempts on connection errors, timeouts, 408/429 and 5xx (searchgym.http.post_json),
        sleeping backoff * 2**attempt."""
        self.base_url = base_url.rstrip("/")
        self.retry = Retry(retries=retries, backoff=backoff)
        self.max_batch = max_batch
        self._limits: dict[str, int] | None = None
        self._http = httpx.Client(base_url=self.base_url, timeout=timeout)

    def _post(self, path: str, payload: dict[str, Any]) -> dict[str, Any]:
        try:
            return post_json(self._http, path, payload, self.retry, parse=_result_object)
        except HTTPFailure as e:
            url = self.base_url + path
            if e.status is not None and not e.transient:
                reason = f"refused the request ({e.status}): {_detail(e.body)}"
                raise SearchServiceError(url, reason, e.status, e.body) from e
            raise SearchServiceError(url, e.reason, e.status, e.body, e.transient) from e

    def limits(self) -> dict[str, int]:
        """The server's per-request limits from /health; {} for a server that does not report them (asked
        again next time if the server did not answer)."""
        if self._limits is None:
            try:
                r = self._http.get("/health")
                self._limits = dict(r.json().get("limits", {})) if r.status_code == 200 else {}
            except httpx.HTTPError:
                return {}
            except (ValueError, AttributeError, TypeError):
                self._limits = {}
        return self._limits

    def batch_size(self, k: int) -> int:
        """Queries per request for top-k search: within max_batch and the server's limits."""
        lim = self.limits()
        size = min(self.max_batch, lim.get("max_queries", self.max_batch))
        return max(1, min(size, lim.get("max_results", size * k) // max(1, k)))

    def search(self, query: str, k: int = 5) -> list[SearchHit]:
        return self.batch_search([query], k)[0]

    def batch_search(self, queries: list[str], k: int = 5) -> list[list[SearchHit]]:
        out: list[list[SearchHit]] = []
        step = self.batch_size(k)
        for start in range(0, len(queries), step):
            chunk = queries[start : start + step]
            data = self._post("/retrieve", {"queries": chunk, "topk": k, "return_scores": True})
            if len(data["result"]) != len(chunk):
                reason = f"answered {len(data['result'])} result lists for {len(chunk)} queries"
                raise SearchServiceError(self.base_url + "/retrieve", reason)
            out.extend([_hit(item) for item in hits] for hits in data["result"])
        return out

    def access(self, url: str) -> Document | None:
        (page,) = self._post("/access", {"urls": [url]})["result"]
        if page is None or not page.get("found", True):  # ASearcher's own server answers null
            return None
        title, _, text = page["contents"].partition("\n")
        return Document(
            id=page.get("id") or url, url=page.get("url", url), title=page.get("title") or title, text=text
        )

    def health(self) -> dict[str, Any]:
        r = self._http.get("/health")
        r.raise_for_status()
        return r.json()

    def close(self) -> None:
        self._http.close()


def _result_object(data: Any) -> dict[str, Any]:
    if not isinstance(data, dict) or not isinstance(data.get("result"), list):
        raise TypeError('no "result" list in the reply')
    return data


def _detail(body: str) -> str:
    try:
        return str(json.loads(body).get("detail", body))
    except (ValueError, AttributeError):
        return body


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
