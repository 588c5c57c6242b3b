"""The browser parts of the template language: an agent's browser access (roster) and the actions
of a declarative browser step (workflow).

A browser step lists actions, each a mapping of one key (the action) to its arguments; a string is
short for the action's main argument::

    browser:
      - goto: "{{ inputs.crm_url }}/signup"
      - fill: {selector: "#email", value: "{{ inputs.email }}"}
      - select: {selector: "#plan", value: pro}
      - check: "#terms"
      - click: "button[type=submit]"
      - wait_for: "#confirmation"
      - extract: {name: confirmation, selector: "#confirmation"}
      - extract: {name: prices, selector: "table.prices", kind: table}
      - screenshot: signed_up
      - download: {name: invoice, selector: "a#invoice"}

String arguments are Jinja over the step's scope (inputs, steps, context, run).
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

from baton.egress import Entry
from baton.spec.common import IDENTIFIER, Duration, Strict

_HOST = re.compile(r"^(\*\.)?[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*(:\d+)?$")


class BrowserAccess(Strict):
    """What an agent may do with a browser: the hosts it may reach (every navigation and every
    request of a page elsewhere is blocked and recorded), and its time limits."""

    allow: list[str] = Field(
        min_length=1,
        description="hosts the browser may reach: 'crm.example.com', '*.example.com' (any subdomain), "
        "'127.0.0.1' (any port) or '127.0.0.1:8000' (that port)",
    )
    action_timeout: Duration = Field(
        default=timedelta(seconds=10), description="how long one action may wait for its element"
    )
    navigation_timeout: Duration = Field(
        default=timedelta(seconds=30), description="how long a page may take to load"
    )
    max_actions: int = Field(
        default=40, ge=1, le=1000, description="the most actions a model may take in one agent-driven step"
    )

    @field_validator("allow")
    @classmethod
    def _hosts(cls, value: list[str]) -> list[str]:
        for index, host in enumerate(value):
            if not _HOST.match(host.lower()):
                raise PydanticCustomError(
                    "browser_host",
                    "allow[{index}]: '{host}' is not a host name; write a host such as 'crm.example.com', "
                    "'*.example.com' or '127.0.0.1:8000' (no scheme, no path)",
                    {"index": index, "host": host},
                )
            try:
                Entry.parse(host)
            except ValueError as error:  # a host the URL standard reads as an address: '127.1'
                raise PydanticCustomError(
                    "browser_host",
                    "allow[{index}]: '{host}' {problem}",
                    {"index": index, "host": host, "problem": str(error)},
                ) from None
        return [host.lower() for host in value]


class Goto(Strict):
    action: Literal["goto"] = "goto"
    url: str


class Fill(Strict):
    action: Literal["fill"] = "fill"
    selector: str
    value: str


class Select(Strict):
    action: Literal["select"] = "select"
    selector: str
    value: str = Field(description="the option's value, or its label")


class Check(Strict):
    action: Literal["check"] = "check"
    selector: str
    checked: bool = True


class Click(Strict):
    action: Literal["click"] = "click"
    selector: str


class WaitFor(Strict):
    action: Literal["wait_for"] = "wait_for"
    selector: str
    state: Literal["attached", "detached", "visible", "hidden"] = "visible"


class Extract(Strict):
    action: Literal["extract"] = "extract"
    name: str = Field(pattern=IDENTIFIER, description="the output field the value goes to")
    selector: str
    kind: Literal["text", "all_text", "table", "attribute"] = Field(
        default="text",
        description="text: the first match's text; all_text: every match's; table: rows of a <table> as "
        "objects keyed by its header cells; attribute: the first match's ``attribute``",
    )
    attribute: str | None = None

    @model_validator(mode="after")
    def _attribute_named(self) -> Extract:
        if self.kind == "attribute" and not self.attribute:
            raise PydanticCustomError(
                "browser_extract",
                "an extract of kind attribute names the attribute to read: add 'attribute: href' (or "
                "the attribute you want) to the extract",
            )
        return self


class Screenshot(Strict):
    action: Literal["screenshot"] = "screenshot"
    name: str = Field(pattern=IDENTIFIER)
    full_page: bool = True


class Download(Strict):
    action: Literal["download"] = "download"
    name: str = Field(pattern=IDENTIFIER)
    selector: str = Field(description="the link or button that starts the download")


# action -> (model, the argument a plain string stands for)
ACTIONS: dict[str, tuple[type[Strict], str]] = {
    "goto": (Goto, "url"),
    "fill": (Fill, ""),
    "select": (Select, ""),
    "check": (Check, "selector"),
    "click": (Click, "selector"),
    "wait_for": (WaitFor, "selector"),
    "extract": (Extract, ""),
    "screenshot": (Screenshot, "name"),
    "download": (Download, ""),
}


def _one_action(value: Any) -> Any:
    """``{fill: {selector, value}}`` -> ``{action: fill, selector, value}``."""
    if not isinstance(value, dict) or "action" in value:
        return value
    if len(value) != 1:
        raise PydanticCustomError(
            "browser_action",
            "a browser action is a mapping of one key (the action) to its arguments; got keys {keys}",
            {"keys": ", ".join(map(str, value)) or "none"},
        )
    ((name, args),) = value.items()
    if name not in ACTIONS:
        raise PydanticCustomError(
            "browser_action",
            "unknown browser action '{name}'; use one of {known}",
            {"name": name, "known": ", ".join(ACTIONS)},
        )
    main = ACTIONS[name][1]
    if isinstance(args, str) and main:
        args = {main: args}
    if not isinstance(args, dict):
        raise PydanticCustomError(
            "browser_action",
            "the arguments of '{name}' are a mapping ({fields})",
            {"name": name, "fields": ", ".join(ACTIONS[name][0].model_fields.keys() - {"action"})},
        )
    return {"action": name, **args}


BrowserAction = Annotated[
    Annotated[
        Goto | Fill | Select | Check | Click | WaitFor | Extract | Screenshot | Download,
        Field(discriminator="action"),
    ],
    BeforeValidator(_one_action),
]


def action_strings(action: Strict) -> list[tuple[str, str]]:
    """(field, text) of each Jinja-bearing string argument of ``action``."""
    return [
        (name, value)
        for name, value in action
        if isinstance(value, str) and name not in ("action", "name", "kind", "state")
    ]
