"""Argument types that refuse a value out of range before anything runs: argparse turns the message into
one line (`glan: argument --concurrency: ...`) and exit code 2."""

from __future__ import annotations

import argparse
import math


def whole_number(minimum: int):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected a whole number of at least {minimum}, got {value}")
        return value

    parse.__name__ = "whole number"
    return parse


def _number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def price(text: str) -> float:
    """USD per million tokens: a finite number of at least 0."""
    value = _number(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a price of at least 0, got {text}")
    return value


def positive_number(text: str) -> float:
    value = _number(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a number greater than 0, got {text}")
    return value


def fraction(text: str) -> float:
    value = _number(text)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"expected a fraction between 0 and 1 (e.g. 0.01 for 1%), got {text}")
    return value


def port(text: str) -> int:
    value = whole_number(1)(text)
    if value > 65535:
        raise argparse.ArgumentTypeError(f"expected a TCP port from 1 to 65535, got {value}")
    return value
