"""Markdown notes → sections: headings, front matter, tags."""

from __future__ import annotations

from boocode_mcp.memory.notes import Section, inline_tags, parse_note


def titles(sections: list[Section]) -> list[str]:
    return [s.title for s in sections]


def test_one_section_per_heading_with_preamble_titled_by_file_name() -> None:
    text = "intro line\n\n# First\nbody one\n\n## Second ##\nbody two\n### Third\n"
    sections = parse_note(text, fallback_title="ideas")
    assert titles(sections) == ["ideas", "First", "Second", "Third"]
    assert [s.ordinal for s in sections] == [0, 1, 2, 3]
    assert sections[0].body == "intro line"
    assert sections[1].body == "body one"
    assert sections[2].body == "body two"
    assert sections[3].body == ""


def test_empty_preamble_is_dropped_but_numbering_stays_stable() -> None:
    sections = parse_note("\n\n# Only\ntext\n", fallback_title="f")
    assert [(s.ordinal, s.title) for s in sections] == [(1, "Only")]


def test_headings_inside_fenced_code_are_text() -> None:
    text = "# Real\n```sh\n# not a heading\n#nottag\n```\nafter\n~~~\n## also not\n~~~\n"
    sections = parse_note(text, fallback_title="f")
    assert titles(sections) == ["Real"]
    assert "# not a heading" in sections[0].body
    assert "## also not" in sections[0].body
    assert sections[0].tags == ()


def test_setext_headings_and_rules() -> None:
    text = "Big Title\n=========\nfirst\n\nSmaller\n-------\nsecond\n\n---\n\n- item\n---\n"
    sections = parse_note(text, fallback_title="f")
    assert titles(sections) == ["Big Title", "Smaller"]
    # A rule after a blank line or after a list item stays a rule (body text).
    assert "---" in sections[1].body


def test_hash_without_space_is_not_a_heading() -> None:
    sections = parse_note("#hashtag at start\n", fallback_title="f")
    assert titles(sections) == ["f"]
    assert sections[0].tags == ("hashtag",)


def test_front_matter_title_and_tag_forms() -> None:
    for tags_line in ("tags: [ops, 'release']", "tags: ops, release", "tags:\n  - ops\n  - release"):
        text = f"---\ntitle: Deploy guide\n{tags_line}\n---\npreamble\n# Step\nbody\n"
        sections = parse_note(text, fallback_title="deploy")
        assert titles(sections) == ["Deploy guide", "Step"], tags_line
        assert all(s.tags[:2] == ("ops", "release") for s in sections), tags_line
        assert "title:" not in sections[0].body


def test_unclosed_front_matter_is_body() -> None:
    sections = parse_note("---\ntags: x\nno end\n", fallback_title="f")
    assert sections[0].tags == ()
    assert "tags: x" in sections[0].body


def test_inline_tags_belong_to_their_section() -> None:
    text = "# A #ops\nsee #deploy-notes and #ci/cd.\n# B\nissue #123, url http://x.io/#frag, &#39; `#code`\n"
    a, b = parse_note(text, fallback_title="f")
    assert a.tags == ("ops", "deploy-notes", "ci/cd")
    assert b.tags == ()


def test_inline_tags_dedupe_case_insensitively() -> None:
    assert inline_tags("#Ops #ops #OPS #k8s") == ("Ops", "k8s")


def test_crlf_line_endings() -> None:
    sections = parse_note("# One\r\nbody\r\n# Two\r\nmore\r\n", fallback_title="f")
    assert titles(sections) == ["One", "Two"]
    assert sections[0].body == "body"
