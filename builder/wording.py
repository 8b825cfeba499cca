"""How counts read in messages."""


def counted(count: float, noun: str, plural: str | None = None) -> str:
    """ "1 discipline", "2 disciplines", "1,490 disciplines": the count with its noun in the number it takes."""
    return f"{count:,.0f} {noun if count == 1 else plural or noun + 's'}"
