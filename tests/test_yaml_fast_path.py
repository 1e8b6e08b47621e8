"""Policy and scenario YAML is composed by libyaml when the document is valid and within every
limit, else by the bounded pure-Python loader: whichever path reads it, a document gives the same
nodes (tags, values, lines and columns), the same data, and the same errors."""

from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator.policies import model
from orchestrator.policies.model import YAMLLimitError, load_yaml_document

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(model._FastLoader is None, reason="PyYAML without libyaml")


def _slow(text):
    loader = model._BoundedLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None, None
        model._check_expansion(node)
        return node, loader.construct_document(node)
    finally:
        loader.dispose()


def _tree(node, seen=None):
    seen = {} if seen is None else seen
    if id(node) in seen:
        return ("alias", seen[id(node)])
    seen[id(node)] = len(seen)
    mark = (node.start_mark.line, node.start_mark.column)
    if isinstance(node, yaml.ScalarNode):
        return (node.tag, node.value, node.style or None, mark)  # plain: libyaml says "", PyYAML None
    kids = [_tree(k, seen) for pair in node.value for k in pair] if isinstance(node, yaml.MappingNode) else [
        _tree(k, seen) for k in node.value]
    return (type(node).__name__, node.tag, mark, kids)


def _same(text):
    fast = model._compose_fast(text)
    assert fast is not model._MISS, text
    slow = _slow(text)
    assert (fast[0] is None) == (slow[0] is None)
    if fast[0] is not None:
        assert _tree(fast[0]) == _tree(slow[0])
    assert fast[1] == slow[1]


scalars = st.one_of(
    st.integers(-10**6, 10**6), st.booleans(), st.none(), st.floats(allow_nan=False, allow_infinity=False, width=32),
    st.sampled_from(["22:00", "NO", "yes", "on", "0x1F", "1_000", "2024-01-31", "2024-01-31 05:00:00Z", "~", "",
                     "a: b", "# not a comment", "*star", "&amp", "- dash", "'quoted'", "multi\nline", "tab\there"]),
    st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), max_size=12),
)
docs = st.recursive(scalars, lambda kids: st.one_of(
    st.lists(kids, max_size=4), st.dictionaries(st.text("abcdefgh_ ", min_size=1, max_size=6), kids, max_size=4)),
    max_leaves=25)


@settings(max_examples=150, deadline=None)
@given(doc=docs, flow=st.sampled_from([None, True, False]), indent=st.integers(2, 6))
def test_fast_path_gives_what_the_bounded_loader_gives(doc, flow, indent):
    _same(yaml.safe_dump(doc, default_flow_style=flow, indent=indent, allow_unicode=True))


def test_every_yaml_file_of_the_repository_reads_the_same():
    files = [p for pattern in ("policies/**/*.yaml", "orchestrator/**/*.yaml", "tests/**/*.yaml", "deploy/**/*.yaml")
             for p in ROOT.glob(pattern)]
    assert len(files) > 5
    read = 0
    for path in files:
        text = path.read_text()
        if model._compose_fast(text) is model._MISS:  # multi-document or invalid: the slow path's business
            continue
        _same(text)
        read += 1
    assert read > 5


def test_anchors_merges_and_comments_read_the_same():
    _same("defaults: &d {tier: high, deadline: {cron: '0 6 * * 1-5', timezone: UTC}}\n"
          "policies:\n  - <<: *d\n    name: a  # comment\n  - name: b\n    <<: *d\n    tier: low\n")


@pytest.mark.parametrize("text, message", [
    ("a: [1\n", None),  # syntax error
    ("a: *nope\n", None),  # undefined alias
    ("x: &a [1]\n" + "".join(f"k{i}: *a\n" for i in range(model.MAX_YAML_ALIASES + 1)), "aliases"),
    ("a: &a [*a]\n", "self-referencing"),
    ("".join("  " * i + f"k{i}:\n" for i in range(model.MAX_YAML_DEPTH + 2)) + "  " * (model.MAX_YAML_DEPTH + 2) + "v\n",
     "levels deep"),
    ("a: &a [x, x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
     "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\n"
     "e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\nf: [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]\n", "alias bomb"),
])
def test_invalid_or_over_limit_documents_take_the_bounded_loader_and_its_errors(text, message):
    assert model._compose_fast(text) is model._MISS
    with pytest.raises(yaml.MarkedYAMLError) as fast_path:
        load_yaml_document(text)
    with pytest.raises(yaml.MarkedYAMLError) as slow_path:
        _slow(text)
    if message:
        assert isinstance(fast_path.value, YAMLLimitError) and message in str(fast_path.value.problem)
    else:
        assert type(fast_path.value) is type(slow_path.value)
        assert str(fast_path.value) == str(slow_path.value)
