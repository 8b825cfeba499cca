"""The curated mutants: each a small, deliberate breakage of one behaviour, and the tests that must catch it.

An edit names its file and an exact snippet that must occur exactly once; when the code moves (the
snippet is gone), the runner reports the mutant as stale: point it at the new code. The first six are
the breakages of issue 15, which every suite run must catch.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Mutant:
    name: str
    path: str
    old: str
    new: str
    tests: tuple[str, ...]  # pytest arguments: test files, or one file and "-k" with an expression


MUTANTS = [
    # -- the six breakages of issue 15 -----------------------------------------------------------------
    Mutant("dedup-and-decontamination-disconnected", "builder/stages/questions.py",
           "await run_steps(question_steps(self.ctx.settings.quality, benchmarks), rows, report)",
           "rows",
           ("tests/test_quality_build.py",)),
    Mutant("max-failure-rate-ignored", "builder/build.py",
           "if failed and failed / (succeeded + failed) > max_failure_rate:", "if False:",
           ("tests/test_failed_items.py",)),
    Mutant("max-tokens-not-doubled-after-length", "builder/llm/attempts.py",
           'self.params["max_tokens"] *= 2', 'self.params["max_tokens"] *= 1',
           ("tests/test_failed_items.py",)),
    Mutant("batch-priced-at-the-online-price", "builder/llm/batch.py",
           "answer.completion_tokens, batch=True)", "answer.completion_tokens, batch=False)",
           ("tests/test_batch_budget.py",)),
    Mutant("parent-commit-dropped", "builder/publish/hub.py",
           "            parent_commit=head,\n", "",
           ("tests/test_hub.py", "-k", "commit_landing")),
    Mutant("retry-after-never-waited", "builder/llm/engine.py",
           "delay = error.retry_after_s if error.retry_after_s is not None else backoff_s(retries)\n"
           "                if error.retry_after_s is not None:",
           "delay = 0.0 if error.retry_after_s is not None else backoff_s(retries)\n"
           "                if False:",
           ("tests/test_endpoints.py", "-k", "retry_after")),
    # -- endpoints: waits, limits, refusals, retries ------------------------------------------------------
    Mutant("retry-after-sleep-only-no-endpoint-pause", "builder/llm/engine.py",
           "state.paused_until = max(state.paused_until, time.monotonic() + delay)", "pass",
           ("tests/test_endpoints.py", "-k", "retry_after")),
    Mutant("retry-after-http-date-ignored", "builder/llm/transport.py",
           "return max(0.0, email.utils.parsedate_to_datetime(value).timestamp() - time.time())", "return None",
           ("tests/test_endpoints.py", "-k", "retry_after")),
    Mutant("retry-after-ms-ignored", "builder/llm/transport.py",
           'float(headers.get("retry-after-ms"))', 'float(headers.get("x-retry-after-ms"))',
           ("tests/test_endpoints.py", "-k", "retry_after")),
    Mutant("requests-per-minute-ignored", "builder/llm/engine.py",
           "            if state.requests:\n", "            if False:\n",
           ("tests/test_endpoints.py", "-k", "minute")),
    Mutant("tokens-per-minute-ignored", "builder/llm/engine.py",
           "            if state.tokens:\n", "            if False:\n",
           ("tests/test_endpoints.py", "-k", "minute")),
    Mutant("concurrency-never-cut-on-429", "builder/llm/limits.py",
           "if overloaded and now - self._last_cut >= self.cooldown_s:", "if False:",
           ("tests/test_engine.py",)),
    Mutant("403-not-fatal", "builder/llm/engine.py",
           ' 403: "check that the key in ${env} may use this model",', "",
           ("tests/test_endpoints.py", "-k", "refuses")),
    Mutant("transport-retries-one-too-many", "builder/llm/engine.py",
           "retries >= self.limits.max_retries", "retries > self.limits.max_retries",
           ("tests/test_endpoints.py", "-k", "transport")),
    Mutant("non-json-error-body-kept-on-many-lines", "builder/llm/transport.py",
           'return " ".join(redact(body.decode(errors="replace"), api_key)[:length].split())',
           'return redact(body.decode(errors="replace"), api_key)[:length]',
           ("tests/test_endpoints.py", "-k", "transport")),
    Mutant("card-of-a-run-whose-every-item-failed", "builder/publish/card.py",
           "    if not configs:  # every item of the run failed\n        return 0\n", "",
           ("tests/test_endpoints.py", "-k", "transport")),
    Mutant("one-attempt-too-few", "builder/llm/attempts.py",
           "return self.ok or self.attempt >= self.max_attempts",
           "return self.ok or self.attempt >= self.max_attempts - 1",
           ("tests/test_failed_items.py",)),
    Mutant("openai-base-url-ignored", "builder/plan.py",
           '[os.environ.get("OPENAI_BASE_URL") or OPENAI_URL]', "[OPENAI_URL]",
           ("tests/test_endpoints.py", "-k", "stage_key")),
    Mutant("stage-api-key-env-ignored", "builder/plan.py",
           'key_env = stage_settings.api_key_env or "OPENAI_API_KEY"', 'key_env = "OPENAI_API_KEY"',
           ("tests/test_endpoints.py", "-k", "stage_key")),
    # -- structured output ------------------------------------------------------------------------------
    Mutant("fallback-stops-at-json-object", "builder/llm/engine.py",
           '_FALLBACK = {"json_schema": "json_object", "json_object": "prompt"}',
           '_FALLBACK = {"json_schema": "json_object"}',
           ("tests/test_endpoints.py", "-k", "structured")),
    Mutant("accepted-mode-not-remembered", "builder/llm/engine.py",
           "self.cache.remember_mode(state.endpoint.base_url, state.mode)", "pass",
           ("tests/test_endpoints.py", "-k", "structured")),
    Mutant("output-schemas-allow-extra-keys", "builder/schemas.py",
           'model_config = ConfigDict(extra="forbid")', 'model_config = ConfigDict(extra="ignore")',
           ("tests/test_quality_build.py",)),
    # -- free text and control characters ---------------------------------------------------------------
    Mutant("free-text-asked-for-as-json", "builder/llm/attempts.py",
           "return None if isinstance(output_model, FreeText) else output_model.model_json_schema()",
           "return (output_model.record if isinstance(output_model, FreeText) else output_model).model_json_schema()",
           ("tests/test_free_text.py", "-k", "response_format")),
    Mutant("control-characters-let-through", "builder/llm/free_text.py",
           "found = CONTROL_CHARACTER.search(text)", "found = None",
           ("tests/test_free_text.py", "-k", "control_character")),
    Mutant("control-characters-in-json-let-through", "builder/llm/structured.py",
           "    if found := _control_character(data, ()):\n", "    if found := None:\n",
           ("tests/test_free_text.py", "-k", "control_character")),
    Mutant("question-wrappers-kept", "builder/llm/free_text.py",
           "text = self._unwrapped(text.strip(), self.label) if self.label else text.strip()", "text = text.strip()",
           ("tests/test_structured.py", "-k", "wraps")),
    Mutant("answer-unwrapped-like-a-question", "builder/stages/answers.py",
           'free_text=True, json_form="Answer"',
           'free_text=True, label="Answer", json_form="Answer"',
           ("tests/test_free_text.py", "-k", "byte_for_byte")),
    # -- quality ----------------------------------------------------------------------------------------
    Mutant("exact-dedup-off", "builder/quality/steps.py",
           "exact=settings.exact,\n", "exact=False,\n", ("tests/test_quality_build.py",)),
    Mutant("near-dedup-off", "builder/quality/steps.py",
           "near=settings.near,\n", "near=False,\n", ("tests/test_quality_build.py",)),
    Mutant("dedup-in-one-piece-on-the-event-loop", "builder/quality/steps.py",
           "return await run_on_loop(self.in_slices(rows, report))", "return self(rows, report)",
           ("tests/test_quality.py",)),
    Mutant("decontamination-off", "builder/quality/steps.py",
           "    if benchmarks:\n", "    if False:\n", ("tests/test_quality_build.py",)),
    Mutant("no-held-out-split", "builder/stages/answers.py",
           "test_ids = held_out_ids(rows, per_discipline=quality.test_split.per_discipline)",
           "test_ids = set()", ("tests/test_cli.py", "-k", "summary")),
    Mutant("refusals-kept", "builder/quality/filters.py",
           "if any(_fold(pattern) in folded_answer for pattern in refusal_patterns):", "if False:",
           ("tests/test_quality.py",)),
    Mutant("near-duplicates-looked-up-in-the-first-band-only", "builder/quality/dedup.py",
           "members = set(self.members[buckets].ravel().tolist())",
           "members = set(self.members[buckets[:1]].ravel().tolist())", ("tests/test_quality.py",)),
    Mutant("near-duplicate-candidates-unbounded", "builder/quality/dedup.py",
           "BUCKET_CAP = 16\n", "BUCKET_CAP = 128\n", ("tests/test_quality.py",)),
    # -- admission --------------------------------------------------------------------------------------
    Mutant("units-in-flight-unbounded", "builder/execute/admission.py",
           "(self.admitted < UNITS_IN_FLIGHT and self.engine.wants_work)", "self.engine.wants_work",
           ("tests/test_admission.py",)),
    Mutant("units-in-flight-unbounded-in-bytes", "builder/execute/admission.py",
           "and self.held + claim <= BYTES_IN_FLIGHT", "and True", ("tests/test_admission.py",)),
    Mutant("units-ahead-unbounded", "builder/execute/admission.py",
           "self.started - self.admitted < UNITS_AHEAD", "True", ("tests/test_admission.py",)),
    Mutant("units-go-on-while-the-endpoints-are-full", "builder/execute/admission.py",
           "(self.admitted < UNITS_IN_FLIGHT and self.engine.wants_work)", "self.admitted < UNITS_IN_FLIGHT",
           ("tests/test_admission.py",)),
    # -- batch ------------------------------------------------------------------------------------------
    Mutant("max-requests-not-applied-to-batches", "builder/llm/batch.py",
           "if stop := self.accounting.budget_exhausted(worst_cost):", "if stop := None:",
           ("tests/test_batch_budget.py", "-k", "max_requests")),
    Mutant("batch-file-one-request-over-the-limit", "builder/llm/batch.py",
           "len(chunk.saved.keys) == MAX_FILE_REQUESTS or", "len(chunk.saved.keys) == MAX_FILE_REQUESTS + 1 or",
           ("tests/test_batch.py", "-k", "equals_online")),
    # -- run settings, show, taxonomy -------------------------------------------------------------------
    Mutant("seed-flag-ignored", "builder/plan.py",
           '{"seed": settings.seed} if settings.seed is not None else {}', "{}", ("tests/test_cli.py", "-k", "seed")),
    Mutant("show-config-ignored", "builder/cli/show.py",
           'rows = datasets.load_dataset(str(folder), config, split="train")',
           'rows = datasets.load_dataset(str(folder), "instructions", split="train")',
           ("tests/test_cli.py", "-k", "show_config")),
    # -- push -------------------------------------------------------------------------------------------
    Mutant("push-private-ignored", "builder/publish/hub.py",
           "private=True if private else None, exist_ok=True", "private=None, exist_ok=True",
           ("tests/test_hub.py", "-k", "private")),
    Mutant("push-message-ignored", "builder/publish/hub.py",
           'commit_message=message or f"Release {result.tag}",', 'commit_message=f"Release {result.tag}",',
           ("tests/test_hub.py", "-k", "private")),
    Mutant("push-revision-ignored", "builder/cli/push.py",
           "revision=args.revision,", 'revision="main",', ("tests/test_hub.py", "-k", "private")),
    Mutant("push-without-token-not-refused-up-front", "builder/publish/hub.py",
           "if get_token() is None:", "if False:", ("tests/test_hub.py", "-k", "token")),
]
