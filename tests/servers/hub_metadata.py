"""The Hub's check of a dataset card's YAML metadata, on /api/validate-yaml and on every commit that
changes README.md: the header must parse to a mapping, and `configs`, `dataset_info` and `license`
must have the shapes `load_dataset` and the dataset viewer read. Errors are worded as paths into the
metadata, as the Hub words them.
"""

from __future__ import annotations

import re
from typing import Any

import yaml

_HEADER = re.compile(r"\A---\n(.*?)\n---(?:\n|\Z)", re.S)


def card_metadata_errors(card: str) -> list[str]:
    """Every problem of the card's metadata; [] for a card without a YAML header or with a valid one."""
    match = _HEADER.match(card)
    if not match:
        return []
    try:
        metadata = yaml.safe_load(match.group(1))
    except yaml.YAMLError as error:
        return [f"Invalid YAML in the metadata of README.md: {error}"]
    if metadata is None:
        return []
    if not isinstance(metadata, dict):
        return ["The metadata of README.md must be a YAML mapping."]
    errors: list[str] = []
    if "license" in metadata and not _is_str_or_str_list(metadata["license"]):
        errors.append('"license" must be a string or a list of strings')
    if "configs" in metadata:
        errors += _configs_errors(metadata["configs"])
    if "dataset_info" in metadata:
        errors += _dataset_info_errors(metadata["dataset_info"])
    return errors


def _is_str_or_str_list(value: Any) -> bool:
    return isinstance(value, str) or (isinstance(value, list) and all(isinstance(item, str) for item in value))


def _configs_errors(configs: Any) -> list[str]:
    if not isinstance(configs, list):
        return ['"configs" must be an array']
    errors, names, defaults = [], set(), 0
    for index, config in enumerate(configs):
        where = f'"configs[{index}]'
        if not isinstance(config, dict):
            errors.append(f'{where}" must be an object')
            continue
        name = config.get("config_name")
        if not isinstance(name, str) or not name:
            errors.append(f'{where}.config_name" is required and must be a string')
        elif name in names:
            errors.append(f'{where}.config_name" duplicates config {name!r}')
        names.add(name)
        if "default" in config and not isinstance(config["default"], bool):
            errors.append(f'{where}.default" must be a boolean')
        defaults += config.get("default") is True
        errors += _data_files_errors(config.get("data_files"), f"{where}.data_files")
    if defaults > 1:
        errors.append('"configs": at most one config may be the default')
    return errors


def _data_files_errors(data_files: Any, where: str) -> list[str]:
    if data_files is None or _is_str_or_str_list(data_files):
        return []
    if not isinstance(data_files, list):
        return [f'{where}" must be a string, an array of strings, or an array of {{split, path}} objects']
    errors, splits = [], set()
    for index, entry in enumerate(data_files):
        if not isinstance(entry, dict):
            errors.append(f'{where}[{index}]" must be an object with split and path')
            continue
        if not isinstance(entry.get("split"), str):
            errors.append(f'{where}[{index}].split" is required and must be a string')
        elif entry["split"] in splits:
            errors.append(f'{where}[{index}].split" duplicates split {entry["split"]!r}')
        splits.add(entry.get("split"))
        if not _is_str_or_str_list(entry.get("path")):
            errors.append(f'{where}[{index}].path" is required and must be a string or an array of strings')
    return errors


def _dataset_info_errors(info: Any) -> list[str]:
    if isinstance(info, dict):
        return _info_errors(info, '"dataset_info', named=False)
    if not isinstance(info, list):
        return ['"dataset_info" must be an object or an array of objects']
    errors, names = [], set()
    for index, item in enumerate(info):
        where = f'"dataset_info[{index}]'
        if not isinstance(item, dict):
            errors.append(f'{where}" must be an object')
            continue
        errors += _info_errors(item, where, named=len(info) > 1)
        if item.get("config_name") in names:
            errors.append(f'{where}.config_name" duplicates config {item["config_name"]!r}')
        names.add(item.get("config_name"))
    return errors


def _info_errors(info: dict, where: str, named: bool) -> list[str]:
    errors = []
    if named and not isinstance(info.get("config_name"), str):
        errors.append(f'{where}.config_name" is required when dataset_info lists several configs')
    features = info.get("features")
    if features is not None:
        if not isinstance(features, list):
            errors.append(f'{where}.features" must be an array')
        else:
            for index, feature in enumerate(features):
                if not isinstance(feature, dict) or not isinstance(feature.get("name"), str):
                    errors.append(f'{where}.features[{index}].name" is required and must be a string')
                elif not {"dtype", "list", "struct", "sequence", "class_label", "_type"} & feature.keys():
                    errors.append(f'{where}.features[{index}]" needs a dtype, list, struct, sequence or class_label')
    splits = info.get("splits")
    if splits is not None:
        if not isinstance(splits, list):
            errors.append(f'{where}.splits" must be an array')
        else:
            for index, split in enumerate(splits):
                if not isinstance(split, dict) or not isinstance(split.get("name"), str):
                    errors.append(f'{where}.splits[{index}].name" is required and must be a string')
                    continue
                for count in ("num_examples", "num_bytes"):
                    if count in split and not (isinstance(split[count], int) and split[count] >= 0):
                        errors.append(f'{where}.splits[{index}].{count}" must be a non-negative integer')
    for size in ("download_size", "dataset_size"):
        if size in info and not (isinstance(info[size], int) and info[size] >= 0):
            errors.append(f'{where}.{size}" must be a non-negative integer')
    return errors
