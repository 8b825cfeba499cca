"""What counts as "the same words": the normalization shared by dedup and decontamination."""

import unicodedata

# Punctuation that is an operator in a formula: "x*y" and "x/y" are different questions.
_KEPT_PUNCTUATION = frozenset("%*-/")


class _PunctuationToSpace(dict):
    """A str.translate table sending Unicode punctuation (category P*) to a space.

    Filled on first sight of each code point: a full table over 1.1M code points costs
    about half a second at import. Symbols (S*: + = < > ^ $) are never punctuation here.
    """

    def __missing__(self, codepoint: int):
        character = chr(codepoint)
        is_punctuation = unicodedata.category(character).startswith("P") and character not in _KEPT_PUNCTUATION
        self[codepoint] = " " if is_punctuation else codepoint
        return self[codepoint]


_PUNCTUATION_TO_SPACE = _PunctuationToSpace()


def normalize(text: str) -> str:
    """Casefolded words separated by single spaces, punctuation removed.

    NFKC first, so that full-width letters and ligatures from different models compare equal.
    """
    return " ".join(normalized_words(text))


def normalized_words(text: str) -> list[str]:
    """The words of `normalize(text)`."""
    return unicodedata.normalize("NFKC", text).translate(_PUNCTUATION_TO_SPACE).casefold().split()
