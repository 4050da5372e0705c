"""A griffe extension for the API reference: flowsim's numpy docstrings as mkdocstrings renders them.

Loaded by ``mkdocs.yml`` (``plugins.mkdocstrings.handlers.python.options.extensions``). Before a
docstring is parsed it

* renames ``Arguments`` sections (diffrax's word, used throughout flowsim) to ``Parameters``, the
  numpy section griffe's parser knows, so they render as a table of parameters and not as one
  run-on paragraph;
* turns Sphinx roles (``:class:`~flowsim.FlowMap```, ``:func:`fit```, ``:meth:``, ``:attr:``,
  ``:data:``, ``:mod:``, ``:exc:``, ``:obj:``) into cross-references: a name is resolved in the
  docstring's own scope (its module's imports), and a reference whose target the site does not
  document renders as plain code instead of failing the strict build.

Not part of the package; the docstrings themselves stay plain numpydoc for ``help()`` and IDEs.
"""

from __future__ import annotations

import builtins
import html
import re
from typing import Any

import griffe

_SECTION = re.compile(r"^(?P<indent>[ \t]*)Arguments\n(?P=indent)-{3,}[ \t]*$", re.MULTILINE)
_ROLE = re.compile(r":(?:py:)?(?P<role>class|func|meth|attr|data|mod|exc|obj):`(?P<target>[^`]+)`")


def _identifier(obj: griffe.Object, name: str) -> str:
    """The full path of ``name`` as seen from ``obj``'s docstring (best effort)."""
    if name.startswith("flowsim."):
        return name
    head, _, rest = name.partition(".")
    scope: Any = obj
    while scope is not None:
        try:
            found = scope.resolve(head)
        except (griffe.NameResolutionError, AttributeError, KeyError, ValueError):
            scope = scope.parent
            continue
        return found + (f".{rest}" if rest else "")
    return name if "." in name else f"flowsim.{name}"


def rewrite(text: str, obj: griffe.Object) -> str:
    """``text`` with ``Arguments`` sections renamed and Sphinx roles as cross-references."""
    text = _SECTION.sub(lambda m: f"{m['indent']}Parameters\n{m['indent']}----------", text)

    def role(m: re.Match[str]) -> str:
        target = m["target"].strip()
        title = None
        explicit = re.fullmatch(r"(?P<title>.+?)\s*<(?P<target>[^>]+)>", target)
        if explicit:
            title, target = explicit["title"], explicit["target"]
        short = target.startswith("~")
        target = target.lstrip("~.")
        if title is None:
            title = target.rsplit(".", 1)[-1] if short else target
            if m["role"] in ("func", "meth"):
                title += "()"
        if "." not in target and hasattr(builtins, target):  # DeprecationWarning, dict, ...
            return f"<code>{html.escape(title)}</code>"
        ident = _identifier(obj, target)
        return (f'<autoref identifier="{html.escape(ident)}" optional>'
                f"<code>{html.escape(title)}</code></autoref>")

    return _ROLE.sub(role, text)


class FlowsimDocstrings(griffe.Extension):
    """Rewrite every docstring once the object tree is complete (names resolve then)."""

    def on_object(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None and not obj.is_alias:
            obj.docstring.value = rewrite(obj.docstring.value, obj)
