"""The tool registry: every tool the agent can call, declared once.

A `Tool` holds its name, argument schema, description, tag form and how it runs against the environment. Generated
from `TOOLS` (nothing else lists the tools): the tag parser and `PROTOCOL_TAGS`, the stop strings, the JSON tool
schemas (`tool_schemas`), the prompts' tool lists, the JSON / typed call checks, the env's dispatch and the TRL
`environment_factory` methods (`searchgym.integrations.trl_env`). `EnvConfig.tools` picks the active subset.

Adding a tool = one `Tool(...)` entry in `TOOLS` with its runner, plus its tests (see docs/env.md).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from searchgym.env.observe import (
    cut,
    echo,
    paginate,
    render_error,
    render_lines,
    render_page,
    render_search,
    show_hits,
    units,
)
from searchgym.env.records import ShownHit, ShownPage
from searchgym.types import SearchHit

if TYPE_CHECKING:
    from searchgym.env.env import SearchEnv

JSON_TYPES = {str: "string", int: "integer"}
MAX_PAGE = 999_999  # the tag form writes the part as #1 … #999999
FIND_LINES = 5  # matching lines a find shows [ours]


@dataclass(frozen=True)
class Arg:
    name: str
    type: type  # str | int
    description: str
    required: bool = True
    default: Any = None  # filled in when an optional argument is left out
    noun: str = ""  # how error messages name it ("query", "URL"); default: the name
    bounded: bool = False  # longer than env.max_query_chars → invalid turn
    minimum: int | None = None
    maximum: int | None = None


@dataclass(frozen=True)
class ToolResult:
    """What one tool call produced; the env turns it into the observation and the step info."""

    content: str  # the observation text before wrapping and the budget cut
    error: str | None = (
        None  # an env-side problem (unknown URL, no such part); counts against the format gate
    )
    url: str | None = None  # the article asked for
    page: int | None = None  # the part asked for
    hits: tuple[ShownHit, ...] = ()
    shown_page: ShownPage | None = None
    lines: tuple[str, ...] = ()


Runner = Callable[["SearchEnv", dict[str, Any], "list[SearchHit] | None"], ToolResult]


@dataclass(frozen=True)
class Tool:
    name: str
    description: str  # JSON schema, TRL docstring and the JSON prompt's tool line
    args: tuple[Arg, ...]  # the first is the main argument: the tag form is <name> main </name>
    returns: str  # the "Returns:" line of the TRL method's docstring
    tag_example: str  # what stands for the main argument in the tag prompt, e.g. "keywords"
    tag_help: str  # the rest of the tag prompt's line (may use {topk})
    run: Runner  # (env, checked args, prefetched search hits or None) -> ToolResult
    batch_query: str | None = None  # this argument is a query: step_batch sends them all in one batch_search
    ends_episode: bool = False  # a valid call ends the episode; the main argument is the answer
    normalize: Callable[[dict[str, Any]], dict[str, Any]] = field(
        default=lambda args: args
    )  # before the checks

    @property
    def main(self) -> str:
        return self.args[0].name

    @property
    def tags(self) -> tuple[str, str]:
        return f"<{self.name}>", f"</{self.name}>"

    def signature(self) -> str:
        """`access(url: string, page?: integer)`, as the JSON prompt lists it."""
        params = [f"{a.name}{'' if a.required else '?'}: {JSON_TYPES[a.type]}" for a in self.args]
        return f"{self.name}({', '.join(params)})"

    def tag_line(self) -> str:
        open_, close = self.tags
        return f"{open_} {self.tag_example} {close} {self.tag_help}"

    def schema(self) -> dict[str, Any]:
        """The OpenAI function-calling schema (what transformers' get_json_schema makes of the TRL method)."""
        props = {a.name: {"type": JSON_TYPES[a.type], "description": a.description} for a in self.args}
        params: dict[str, Any] = {"type": "object", "properties": props}
        required = [a.name for a in self.args if a.required]
        if required:
            params["required"] = required
        return {
            "type": "function",
            "function": {"name": self.name, "description": self.description, "parameters": params},
        }

    def docstring(self) -> str:
        """Google style, for TRL's environment_factory methods."""
        args = "\n".join(f"    {a.name}: {a.description}" for a in self.args)
        return f"{self.description}\n\nArgs:\n{args}\n\nReturns:\n    {self.returns}\n"


# ---- runners ------------------------------------------------------------------------------------------------
def run_search(env: SearchEnv, args: dict[str, Any], hits: list[SearchHit] | None) -> ToolResult:
    query = args["query"]
    if hits is None:
        hits = env.engine.batch_search([query], env.cfg.topk)[0]
    shown = show_hits(hits, env.cfg.doc_chars, env.cfg.snippet, query)
    return ToolResult(render_search(shown), hits=tuple(shown))


def run_access(env: SearchEnv, args: dict[str, Any], _: list[SearchHit] | None) -> ToolResult:
    url, part = args["url"], args["page"]
    doc = env.engine.access(url)
    if doc is None:
        message = f"no page at {echo(url)}; open a URL from the search results"
        return ToolResult(render_error(message), f"unknown URL {echo(url)}", url, part)
    pages = paginate(doc.text, env.cfg.page_chars)
    if part > len(pages):
        message = f"{echo(doc.url)} has {len(pages)} part(s); there is no part {part}"
        return ToolResult(render_error(message), f"page {part} of a {len(pages)}-part article", url, part)
    shown = ShownPage(doc.url, doc.title, part, len(pages), pages[part - 1].strip())
    return ToolResult(render_page(shown), url=url, page=part, shown_page=shown)


def run_answer(env: SearchEnv, args: dict[str, Any], _: list[SearchHit] | None) -> ToolResult:
    return ToolResult("")  # the env ends the episode (ends_episode) and scores args["answer"]


def run_find(env: SearchEnv, args: dict[str, Any], _: list[SearchHit] | None) -> ToolResult:
    phrase = args["phrase"]
    url = env.last_opened_url
    doc = env.engine.access(url) if url is not None else None
    if doc is None:
        return ToolResult(render_error("open an article with access before find"), "find before any access")
    needle = phrase.casefold()
    matches = [u for u in units(doc.text) if needle in u.casefold()]
    shown = tuple(cut(u, env.cfg.doc_chars) for u in matches[:FIND_LINES])
    return ToolResult(render_lines(doc.url, doc.title, phrase, shown, len(matches)), url=doc.url, lines=shown)


_PAGE_SUFFIX = re.compile(r"#(\d{1,6})$")


def split_page(args: dict[str, Any]) -> dict[str, Any]:
    """`url#2` asks for part 2 (the tag form; JSON calls may write it too) unless `page` is given."""
    url = args.get("url")
    if args.get("page") is None and isinstance(url, str) and (m := _PAGE_SUFFIX.search(url.strip())):
        return {**args, "url": url.strip()[: m.start()], "page": int(m.group(1))}
    return args


TOOLS: dict[str, Tool] = {
    t.name: t
    for t in (
        Tool(
            name="search",
            description="Search the encyclopedia. Returns the top articles with their URL, title and the "
            "beginning of their text.",
            args=(Arg("query", str, "Keywords to search for, e.g. a name and a relation.", bounded=True),),
            returns="The top articles: URL, title and the beginning of the text.",
            tag_example="keywords",
            tag_help="shows the top {topk} articles (URL, title, beginning of the text) inside <information> "
            "and </information>.",
            run=run_search,
            batch_query="query",
        ),
        Tool(
            name="access",
            description="Open an article by its URL (from a search result). Long articles are split into "
            "numbered parts; ask for a later part with `page`.",
            args=(
                Arg(
                    "url", str, "The article's URL as shown in the search results.", noun="URL", bounded=True
                ),
                Arg(
                    "page",
                    int,
                    "Which part of a long article to read, from 1 (default 1).",
                    required=False,
                    default=1,
                    minimum=1,
                    maximum=MAX_PAGE,
                ),
            ),
            returns="The text of that part of the article.",
            tag_example="URL",
            tag_help="opens an article; long articles come in parts: <access> URL#2 </access> opens part 2.",
            run=run_access,
            normalize=split_page,
        ),
        Tool(
            name="answer",
            description="Give the final answer to the question. This ends the episode.",
            args=(Arg("answer", str, "Just the name, place, date or number that answers the question."),),
            returns="A confirmation that the answer was recorded.",
            tag_example="short answer",
            tag_help="gives the final answer (just the name, place, date or number) and ends the episode.",
            run=run_answer,
            ends_episode=True,
        ),
        Tool(
            name="find",
            description="Find a phrase in the article opened last. Returns the lines of that article that "
            f"contain the phrase (at most {FIND_LINES}).",
            args=(Arg("phrase", str, "The words to look for, e.g. a name or a label.", bounded=True),),
            returns="The matching lines of the article and how many there are.",
            tag_example="phrase",
            tag_help=f"lists the lines (at most {FIND_LINES}) of the article opened last that contain the phrase.",
            run=run_find,
        ),
    )
}
DEFAULT_TOOLS = ("search", "access", "answer")


def active(names: Sequence[str]) -> list[Tool]:
    """The registered tools named in `names`, in registry order."""
    return [t for name, t in TOOLS.items() if name in names]


def tool_schemas(names: Sequence[str] = DEFAULT_TOOLS) -> list[dict[str, Any]]:
    """OpenAI function-calling schemas of the active tools (pass as `tools=` to a chat template)."""
    return [t.schema() for t in active(names)]
