"""The WQL subset Hyper-V clients use: parse a query into a small tree.

Supported::

    SELECT * | Prop[, Prop…] FROM Class [WHERE cond]
        cond: comparisons joined with AND / OR / NOT and parentheses; operators = <> != < <= > >=
        and LIKE (% _ [set] wildcards); literals 'str' "str" numbers TRUE FALSE NULL;
        Prop IS [NOT] NULL; the pseudo property __CLASS.
    ASSOCIATORS OF {path} [WHERE AssocClass = C ResultClass = C Role = R ResultRole = R
                                 KeysOnly RequiredQualifier = Q RequiredAssocQualifier = Q]
    REFERENCES OF {path}  [WHERE ResultClass = C Role = R KeysOnly RequiredQualifier = Q]

``{path}`` is a WMI or WBEM object path (``\\\\HOST\\root\\ns:Class.Key="v",…``, single or double
quotes). Anything else raises ``CIM_ERR_INVALID_QUERY`` saying where the query went wrong.
Evaluation lives in :mod:`vsms.wbem.query`.

Bounds (a query is client input): at most :data:`MAX_QUERY_CHARS` characters,
:data:`MAX_OPERATORS` AND / OR / NOT operators and :data:`MAX_NESTING` levels of parentheses and
NOT; beyond them ``CIM_ERR_INVALID_QUERY`` names the limit. AND and OR chains are kept flat
(``("and", [a, b, c])``), so neither parsing nor evaluation recurses once per operator.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import pywbem

_TOKEN = re.compile(r"""
    \s*(?:
      (?P<str>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")
    | (?P<num>[+-]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][+-]?\d+)?(?![\w.]))
    | (?P<op><>|!=|<=|>=|=|<|>)
    | (?P<punct>[,()*])
    | (?P<brace>\{)
    | (?P<ident>[A-Za-z_][\w]*)
    )""", re.VERBOSE)

Expr = tuple[Any, ...]

MAX_QUERY_CHARS = 16 * 1024
MAX_OPERATORS = 256
MAX_NESTING = 32


def bad_query(msg: str) -> pywbem.CIMError:
    return pywbem.CIMError(pywbem.CIM_ERR_INVALID_QUERY, f"invalid WQL query: {msg}")


@dataclass
class SelectQuery:
    classname: str
    properties: list[str] | None  # None: SELECT *
    where: Expr | None


@dataclass
class AssocQuery:
    kind: str  # "associators" or "references"
    path: pywbem.CIMInstanceName
    options: dict[str, str | bool] = field(default_factory=dict)  # lower-case keyword -> value


def _unquote(tok: str) -> str:
    body = tok[1:-1]
    return re.sub(r"\\(.)", r"\1", body)


class _Tokens:
    def __init__(self, text: str) -> None:
        self.text = text
        self.toks: list[tuple[str, str, int]] = []
        self.operators = 0  # AND / OR / NOT seen so far
        self.depth = 0  # parentheses and NOTs open around the current position
        pos = 0
        while pos < len(text):
            if text[pos:].strip() == "":
                break
            m = _TOKEN.match(text, pos)
            if m is None or m.lastgroup is None:
                raise bad_query(f"unexpected {text[pos:].strip()[:20]!r} at offset {pos}")
            kind = m.lastgroup
            if kind == "brace":
                end = _brace_end(text, m.end())
                self.toks.append(("path", text[m.end():end], m.start(kind)))
                pos = end + 1
                continue
            self.toks.append((kind, m.group(kind), m.start(kind)))
            pos = m.end()
        self.i = 0

    def peek(self) -> tuple[str, str, int] | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def next(self, what: str) -> tuple[str, str, int]:
        tok = self.peek()
        if tok is None:
            raise bad_query(f"the query ends where {what} was expected")
        self.i += 1
        return tok

    def keyword(self, *words: str) -> str | None:
        tok = self.peek()
        if tok is not None and tok[0] == "ident" and tok[1].upper() in words:
            self.i += 1
            return tok[1].upper()
        return None

    def expect(self, word: str) -> None:
        if self.keyword(word) is None:
            tok = self.peek()
            found = repr(tok[1]) if tok else "the end of the query"
            raise bad_query(f"expected {word}, found {found}")

    def ident(self, what: str) -> str:
        kind, val, pos = self.next(what)
        if kind != "ident":
            raise bad_query(f"expected {what} at offset {pos}, found {val!r}")
        return val


def _brace_end(text: str, start: int) -> int:
    quote = None
    i = start
    while i < len(text):
        c = text[i]
        if quote:
            if c == "\\":
                i += 1
            elif c == quote:
                quote = None
        elif c in "'\"":
            quote = c
        elif c == "}":
            return i
        i += 1
    raise bad_query("the object path in { } is not closed")


# ---------------------------------------------------------------------- object paths
_PATH_KEY = re.compile(r"""\s*(?P<k>[A-Za-z_]\w*)\s*=\s*
    (?P<v>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|[^,]+)\s*(?:,|$)""", re.VERBOSE)


def parse_object_path(text: str) -> pywbem.CIMInstanceName:
    """A WMI (``\\\\host\\ns:C.k="v"``) or WBEM (``//host/ns:C.k="v"``) instance path."""
    t = text.strip()
    host = ns = None
    m = re.match(r"^(?:\\\\|//)([^\\/]+)[\\/]([^:]+):", t)
    if m:
        host, ns = m.group(1), m.group(2).replace("\\", "/")
        t = t[m.end():]
    else:
        m = re.match(r"^/?([\w/\\]+):(?=[A-Za-z_]\w*\.)", t)
        if m:
            ns = m.group(1).replace("\\", "/")
            t = t[m.end():]
    cm = re.match(r"^([A-Za-z_]\w*)\.", t)
    if cm is None:
        raise bad_query(f"{text!r} is not an instance path (Class.Key=\"value\",…)")
    keys: dict[str, Any] = {}
    rest = t[cm.end():]
    pos = 0
    while pos < len(rest):
        km = _PATH_KEY.match(rest, pos)
        if km is None:
            raise bad_query(f"cannot read the keys of {text!r} at {rest[pos:][:20]!r}")
        raw = km.group("v").strip()
        val: Any
        if raw[0] in "'\"":
            val = _unquote(raw)
        elif raw.upper() in ("TRUE", "FALSE"):
            val = raw.upper() == "TRUE"
        else:
            try:
                val = int(raw)
            except ValueError:
                raise bad_query(f"key value {raw!r} of {text!r} must be quoted") from None
        keys[km.group("k")] = val
        pos = km.end()
    if not keys:
        raise bad_query(f"{text!r} names no key")
    return pywbem.CIMInstanceName(cm.group(1), keybindings=keys, namespace=ns, host=host)


# ---------------------------------------------------------------------- the parser
_FLIP = {"=": "=", "<>": "<>", "!=": "<>", "<": ">", ">": "<", "<=": ">=", ">=": "<="}


def parse(text: str) -> SelectQuery | AssocQuery:
    if not text or not text.strip():
        raise bad_query("the query is empty")
    if len(text) > MAX_QUERY_CHARS:
        raise bad_query(f"the query has {len(text)} characters, more than the limit of "
                        f"{MAX_QUERY_CHARS}; split it into smaller queries")
    toks = _Tokens(text)
    first = toks.keyword("SELECT", "ASSOCIATORS", "REFERENCES")
    if first is None:
        raise bad_query("a query starts with SELECT, ASSOCIATORS OF or REFERENCES OF")
    if first == "SELECT":
        return _select(toks)
    toks.expect("OF")
    kind, raw, _ = toks.next("an object path in { }")
    if kind != "path":
        raise bad_query("expected an object path in { } after OF")
    q = AssocQuery(first.lower(), parse_object_path(raw))
    if toks.keyword("WHERE"):
        _assoc_where(toks, q)
    if toks.peek() is not None:
        raise bad_query(f"unexpected {toks.peek()[1]!r} at the end")  # type: ignore[index]
    return q


_ASSOC_VALUED = {"ASSOCCLASS", "RESULTCLASS", "ROLE", "RESULTROLE", "REQUIREDQUALIFIER",
                 "REQUIREDASSOCQUALIFIER"}
_ASSOC_FLAGS = {"KEYSONLY", "CLASSDEFSONLY", "SCHEMAONLY"}


def _assoc_where(toks: _Tokens, q: AssocQuery) -> None:
    if toks.peek() is None:
        raise bad_query("WHERE needs at least one keyword")
    allowed = _ASSOC_VALUED if q.kind == "associators" else {"RESULTCLASS", "ROLE",
                                                              "REQUIREDQUALIFIER"}
    while toks.peek() is not None:
        word = toks.ident("a keyword such as ResultClass").upper()
        if word in _ASSOC_FLAGS:
            q.options[word.lower()] = True
            continue
        if word not in allowed:
            raise bad_query(f"{word} is not valid in a {q.kind.upper()} OF query")
        kind, op, _ = toks.next("=")
        if kind != "op" or op != "=":
            raise bad_query(f"expected = after {word}")
        kind, val, pos = toks.next(f"a value for {word}")
        if kind not in ("ident", "str"):
            raise bad_query(f"bad value {val!r} for {word} at offset {pos}")
        q.options[word.lower()] = _unquote(val) if kind == "str" else val


def _select(toks: _Tokens) -> SelectQuery:
    props: list[str] | None
    tok = toks.peek()
    if tok is not None and tok[0] == "punct" and tok[1] == "*":
        toks.next("*")
        props = None
    else:
        props = [toks.ident("a property name")]
        while (t := toks.peek()) is not None and t[0] == "punct" and t[1] == ",":
            toks.next(",")
            props.append(toks.ident("a property name"))
    toks.expect("FROM")
    classname = toks.ident("a class name")
    where = None
    if toks.keyword("WHERE"):
        where = _or(toks)
    if toks.peek() is not None:
        raise bad_query(f"unexpected {toks.peek()[1]!r}")  # type: ignore[index]
    return SelectQuery(classname, props, where)


def _count(toks: _Tokens) -> None:
    toks.operators += 1
    if toks.operators > MAX_OPERATORS:
        raise bad_query(f"the query has more than {MAX_OPERATORS} AND/OR/NOT operators (the "
                        f"limit); split it into smaller queries")


def _enter(toks: _Tokens) -> None:
    toks.depth += 1
    if toks.depth > MAX_NESTING:
        raise bad_query(f"parentheses and NOT are nested more than {MAX_NESTING} deep (the "
                        f"limit); simplify the condition")


def _or(toks: _Tokens) -> Expr:
    terms = [_and(toks)]
    while toks.keyword("OR"):
        _count(toks)
        terms.append(_and(toks))
    return terms[0] if len(terms) == 1 else ("or", terms)


def _and(toks: _Tokens) -> Expr:
    terms = [_not(toks)]
    while toks.keyword("AND"):
        _count(toks)
        terms.append(_not(toks))
    return terms[0] if len(terms) == 1 else ("and", terms)


def _not(toks: _Tokens) -> Expr:
    if toks.keyword("NOT"):
        _count(toks)
        _enter(toks)
        inner = ("not", _not(toks))
        toks.depth -= 1
        return inner
    tok = toks.peek()
    if tok is not None and tok[0] == "punct" and tok[1] == "(":
        toks.next("(")
        _enter(toks)
        inner = _or(toks)
        toks.depth -= 1
        kind, val, _ = toks.next(")")
        if (kind, val) != ("punct", ")"):
            raise bad_query(f"expected ), found {val!r}")
        return inner
    return _comparison(toks)


def _operand(toks: _Tokens) -> tuple[str, Any]:
    kind, val, pos = toks.next("a property or a value")
    if kind == "str":
        return "lit", _unquote(val)
    if kind == "num":
        return "lit", float(val) if any(c in val for c in ".eE") else int(val)
    if kind == "ident":
        up = val.upper()
        if up in ("TRUE", "FALSE"):
            return "lit", up == "TRUE"
        if up == "NULL":
            return "lit", None
        return "prop", val
    raise bad_query(f"unexpected {val!r} at offset {pos}")


def _comparison(toks: _Tokens) -> Expr:
    lk, lv = _operand(toks)
    if lk == "prop" and toks.keyword("IS"):
        negate = toks.keyword("NOT") is not None
        toks.expect("NULL")
        return ("isnull", lv, negate)
    if toks.keyword("LIKE"):
        rk, rv = _operand(toks)
        if lk != "prop" or rk != "lit" or not isinstance(rv, str):
            raise bad_query("LIKE needs a property on the left and a string on the right")
        return ("like", lv, rv)
    kind, op, pos = toks.next("a comparison operator")
    if kind != "op":
        raise bad_query(f"expected a comparison operator at offset {pos}, found {op!r}")
    rk, rv = _operand(toks)
    if lk == "prop" and rk == "lit":
        return ("cmp", lv, "<>" if op == "!=" else op, rv)
    if lk == "lit" and rk == "prop":
        return ("cmp", rv, _FLIP[op], lv)
    raise bad_query("a comparison needs one property and one literal value")
