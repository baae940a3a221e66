"""Python highlighting for the gallery page: the text is unchanged, tokens get colour classes, HTML is escaped."""

from __future__ import annotations

import html
import re

from tracer.render.highlight import python_html

CODE = """import torch  # a comment <b>

def f(x):
    return x if x > 0 else None


y = f"<{1.5e3}>" + 'a & b'
"""


def test_text_is_unchanged_and_escaped() -> None:
    out = python_html(CODE)
    assert html.unescape(re.sub(r"</?span[^>]*>", "", out)) == CODE
    assert "<b>" not in out and "&lt;b&gt;" in out and "&amp;" in out


def test_tokens_get_classes() -> None:
    out = python_html(CODE)
    assert '<span class="k">import</span>' in out
    assert '<span class="c"># a comment &lt;b&gt;</span>' in out
    assert '<span class="d">f</span>' in out
    assert '<span class="b">None</span>' in out
    assert "<span class=\"s\">'a &amp; b'</span>" in out
    assert '<span class="n">0</span>' in out


def test_code_that_does_not_tokenize_is_only_escaped() -> None:
    assert python_html('x = "unclosed <\n') == html.escape('x = "unclosed <\n', quote=False)
