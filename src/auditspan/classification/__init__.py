"""Classify a tool call into a semantic operation type, with its target and parameters.

``Classifier.classify(tool_name, arguments_preview, metadata)`` answers, in
this order, and never raises:

1. **explicit** -- ``metadata["operation_type"]`` (with ``metadata["custom_type"]``
   for ``AGENT_ACTION``). A ``custom_type`` without an ``operation_type`` means
   ``AGENT_ACTION``, as the seed's custom-event example writes it.
2. **rule** -- the first user ``ClassificationRule`` whose tool-name glob (and
   optional argument regex) matches.
3. **heuristic** -- built-in reading of the tool name and the argument preview,
   "as a person would": a SQL statement, a URL, a recipient list, an ``open``
   mode, a queue or cache verb, an LLM or embedding call, a login.
4. **fallback** -- ``AGENT_ACTION`` with ``custom_type`` = the tool name.

::

    >>> c = Classifier().classify("run_sql", "{'query': 'SELECT email FROM customers.pii_emails'}")
    >>> c.type, c.target, c.source
    ('DATABASE_READ', 'customers.pii_emails', 'heuristic')
    >>> dict(c.parameters)
    {'operation': 'select', 'table': 'customers.pii_emails'}
    >>> Classifier().classify("select_best_answer", "{'answers': ['a', 'b']}").type
    'AGENT_ACTION'

How the heuristics read a call (the previews are Python ``str(args)`` reprs
or JSON, cut to 200 characters, so a value may end without its quote):

* The tool name is split into lower-case words (``sendEmail`` -> send, email;
  ``mcp__github__create_issue`` -> mcp, github, create, issue). Names decide
  first, in this order: embeddings, webhook, email sending, auth, message
  queue, cache, workflow/goal/decision, database, upload/download, file, LLM,
  HTTP/web/SaaS, shell/code.
* Then the arguments alone: a SQL statement, a URL under a URL-ish key or as a
  whole value, recipients with a subject, ``model`` with ``messages``, a path
  with an ``open`` mode.
* A SQL statement must *start* a value and have SQL structure (``SELECT ..
  FROM t``, ``INSERT INTO t``, ``UPDATE t SET``, ``DELETE FROM t`` ...; a table
  named ``the`` / ``list`` / ... is prose). For tools whose name is not about
  databases the verb must also be upper case and prose keys (``prompt``,
  ``text``, ``message`` ...) are not read, so "Select the best answer" or a
  prompt that talks about deleting rows is not a database write.
* Tools that work on text *about* an operation (``format_sql``,
  ``parse_url``, ``validate_email``, ``count_tokens`` ...) are not that
  operation: they fall back to ``AGENT_ACTION``.
* When the direction (read or write) cannot be seen -- ``run_sql`` with an
  empty preview -- the riskier type of the pair is chosen (``DATABASE_WRITE``,
  ``FILE_WRITE``, ``MESSAGE_QUEUE_SEND``, ``CACHE_WRITE``) and
  ``parameters["operation"]`` says ``"unknown"``.
* Targets: SQL table (schema-qualified as written, quotes removed), URL
  ``host/path`` (no scheme, user-info, query or fragment, so no secrets),
  file path, queue/topic name, cache key, the first email recipient's domain,
  the LLM model; for a named service with no URL in sight, its name
  (``github``) or the ``bucket/key`` it uploads to.

Only the first 8 KiB of a preview (256 characters of a name) are read, so a
call costs the same bounded time whatever an emitter sends. Results are
memoised by ``(tool_name, arguments_preview)`` in a bounded cache (for calls
whose metadata declares a type, the key also holds that type, custom type and
target: the metadata decides, the rest of it does not matter). A
``Classification`` is shared between calls: it is frozen and its
``parameters`` is a read-only mapping; ``to_record_fields()`` gives plain
dicts for serialisation.

Rules come from code or from a YAML / JSON file (``Classifier.from_file``)::

    rules:
      - tool: "crm_*"             # glob on the tool name, case-insensitive
        type: EXTERNAL_API_CALL
        target: crm.example.com   # optional: fixed target
      - tool: "charge_card"
        type: AGENT_ACTION
        custom_type: payment_processing
      - tool: "run_sql"
        arguments: "(?i)\\\\bpii_"   # optional: regex searched in the preview
        type: DATABASE_READ

The package, one module a step, each importing only the ones above it:

==================  ==========================================================
``_words``          the vocabulary: tool-name words, verbs, argument keys
``_sql``            the SQL recogniser (verb, write or read, tables)
``_urls``           URLs in text: ``host/path``, HTTP method, webhooks
``_arguments``      the argument lexer: a call read once into words and values
``_derivers``       target and parameters of a call of a known type
``_heuristics``     the type of a call that no metadata or rule names
``_rules``          ``ClassificationRule`` and loading rule files
``_classifier``     ``Classification`` and ``Classifier`` (order, cache)
==================  ==========================================================

Rule files are read by ``auditspan._config_files``, which the behavioural
rules share; ``ConfigError`` is its ``ConfigurationError``.
"""

from __future__ import annotations

from auditspan._config_files import ConfigDocument, ConfigError, read_config

from ._classifier import (
    SOURCE_EXPLICIT,
    SOURCE_FALLBACK,
    SOURCE_HEURISTIC,
    SOURCE_RULE,
    Classification,
    Classifier,
)
from ._rules import ClassificationRule, load_classification_rules, rules_from_data

__all__ = [
    "SOURCE_EXPLICIT",
    "SOURCE_FALLBACK",
    "SOURCE_HEURISTIC",
    "SOURCE_RULE",
    "Classification",
    "ClassificationRule",
    "Classifier",
    "ConfigDocument",
    "ConfigError",
    "load_classification_rules",
    "read_config",
    "rules_from_data",
]
