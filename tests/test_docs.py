"""The docs: MkDocs builds docs/ in strict mode (a broken link or anchor, or a page left out of the nav, fails the
build), and every relative link of README.md, which lies outside the MkDocs tree, leads to a file."""

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
README_MAX_LINES = 150  # two screens (issue 30): the rest belongs in docs/


def build(config: Path, site: Path) -> tuple[int, str]:
    """`mkdocs build --strict` of ``config`` into ``site``: its exit status and its output."""
    if importlib.util.find_spec("mkdocs") is None or importlib.util.find_spec("material") is None:
        pytest.fail("mkdocs and mkdocs-material are in the test extra: pip install -e '.[test]'")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}  # Material's banner about MkDocs 2.0, printed on every build
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file", str(config), "--site-dir", str(site)],
        capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    return done.returncode, done.stdout + done.stderr


def test_docs_build_strictly_without_warnings(tmp_path):
    status, output = build(ROOT / "mkdocs.yml", tmp_path / "site")
    assert status == 0 and "WARNING" not in output, output
    assert (tmp_path / "site" / "index.html").is_file()


def test_strict_build_fails_on_broken_links_and_pages_outside_the_nav(tmp_path):
    """The configuration itself: what the build above must catch, it does catch."""
    shutil.copy(ROOT / "mkdocs.yml", tmp_path)
    shutil.copytree(ROOT / "docs", tmp_path / "docs")
    for folder in ("datasets", "results"):  # included by docs/data.md and docs/results.md
        (tmp_path / folder).mkdir()
        shutil.copy(ROOT / folder / "README.md", tmp_path / folder)
    with open(tmp_path / "docs" / "index.md", "a") as f:
        f.write("\n[gone](no-such-page.md) and [no anchor](usage.md#no-such-section)\n")
    (tmp_path / "docs" / "orphan.md").write_text("# Not in the nav\n")
    status, output = build(tmp_path / "mkdocs.yml", tmp_path / "site")
    assert status != 0, output
    for problem in ("no-such-page.md", "#no-such-section", "orphan.md"):
        assert problem in output, output


def relative_links(markdown: str) -> list[str]:
    """The link and image targets of a Markdown text that are paths (no URL, no in-page anchor), code left out."""
    text = re.sub(r"^```.*?^```", "", markdown, flags=re.S | re.M)  # fenced code
    text = re.sub(r"`[^`\n]*`", "", text)  # inline code
    targets = re.findall(r"\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)", text)  # [text](target "title"), ![alt](...)
    targets += re.findall(r"^\s*\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)", text, flags=re.M)  # [label]: target
    targets += re.findall(r"(?:src|href)=[\"']([^\"']+)[\"']", text)  # HTML
    return [t for t in targets if not re.match(r"[a-z][a-z0-9+.-]*:|#", t, flags=re.I)]


def test_readme_links_lead_to_files():
    links = relative_links(README.read_text())
    assert links, "README.md links no docs page"
    missing = [link for link in links if not (ROOT / link.split("#")[0]).exists()]
    assert not missing, f"README.md links to files that do not exist: {missing}"


def test_relative_links_finds_what_it_should():
    text = ('[a](docs/a.md) ![b](docs/b.png "title") [c](https://x.org) [d](#here) `[e](code.md)`\n'
            '```\n[f](fenced.md)\n```\n[g]: docs/g.md\n<img src="docs/h.png">\n')  # fmt: skip
    assert relative_links(text) == ["docs/a.md", "docs/b.png", "docs/g.md", "docs/h.png"]


def test_readme_fits_on_two_screens():
    lines = len(README.read_text().splitlines())
    assert lines <= README_MAX_LINES, f"README.md has {lines} lines; move the details into docs/"
