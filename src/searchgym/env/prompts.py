"""Built-in prompts, one per protocol. Placeholders: {question}, {max_turns}, {topk}.

`EnvConfig.prompt` replaces the tag prompt or the JSON system prompt with your own template.
"""

from __future__ import annotations

TAGS_PROMPT = """\
Answer the question by searching an encyclopedia. In every turn, first think inside <think> and </think>, \
then take exactly one action:
<search> keywords </search> shows the top {topk} articles (URL, title, beginning of the text) inside \
<information> and </information>.
<access> URL </access> opens an article; long articles come in parts: <access> URL#2 </access> opens part 2.
<answer> short answer </answer> gives the final answer (just the name, place, date or number) and ends the episode.
You have at most {max_turns} turns.
Question: {question}
"""

JSON_SYSTEM_PROMPT = """\
You answer questions by searching an encyclopedia with tools. In every turn call exactly one tool by writing
<tool_call>{{"name": "<tool>", "arguments": {{...}}}}</tool_call>
Tools:
- search(query: string): the top {topk} articles with URL, title and the beginning of the text.
- access(url: string, page?: integer): open an article; long articles come in parts numbered from 1.
- answer(answer: string): give the final answer (just the name, place, date or number); this ends the episode.
You have at most {max_turns} turns."""

JSON_USER_PROMPT = "Question: {question}"

PROMPTS: dict[str, str] = {"tags": TAGS_PROMPT, "json": JSON_SYSTEM_PROMPT}
