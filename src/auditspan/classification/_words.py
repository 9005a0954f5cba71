"""The word tables of the classifier: which tool-name words, verbs and argument keys mean what.

A tool call is classified "as a person would read it": ``send_email`` is an
e-mail because of the word ``email`` and the verb ``send``; ``{'sql': ...}``
holds SQL because of its key. These tables are that vocabulary, kept apart
from the code that reads them so that extending the classifier to a new
service, verb or argument name is a one-line change here.

Every table is built once at import (a ``frozenset`` for membership tests, a
tuple where the order of the keys decides which value is read first), and the
modules that read them import the tables by name, so a lookup costs one
global read as before. The SQL grammar's own words (stop words, ``SHOW``
objects) stay with the SQL reader in ``_sql``.
"""

from __future__ import annotations

from typing import Final


def _word_list(text: str) -> tuple[str, ...]:
    """A word list written as one string (easier to read and extend than a list literal)."""
    return tuple(text.split())


# --------------------------------------------------------------------------- argument keys

#: Keys whose values are prose: never read for SQL or URLs unless the tool is about them.
_PROSE_KEYS: Final = frozenset(
    _word_list(
        "prompt text message messages content question instruction instructions description body summary "
        "title note notes comment comments answer answers reply system user assistant goal task thought"
    )
)
_URL_KEYS: Final = frozenset(
    _word_list(
        "url uri urls endpoint href link webhook webhook_url hook_url base_url target_url api_url "
        "callback_url request_url page_url website"
    )
)
_SQL_KEYS: Final = frozenset(_word_list("sql statement stmt sql_query query_sql raw_sql"))
_PATH_KEYS: Final = _word_list(
    "path file_path filepath file filename file_name fname target_file target_path dest destination "
    "dst output_path input_path src source dir directory folder"
)
_TABLE_KEYS: Final = ("table", "table_name", "collection", "collection_name")
_TOPIC_KEYS: Final = _word_list(
    "topic topic_name queue queue_name queue_url stream stream_name exchange channel"
)
_CACHE_KEY_KEYS: Final = ("key", "cache_key", "keys", "name")
_RECIPIENT_KEYS: Final = ("to", "recipient", "recipients", "to_email", "to_address", "email", "cc", "bcc")
_MODEL_KEYS: Final = ("model", "model_name", "model_id", "deployment")
_VERB_KEYS: Final = ("operation", "op", "action", "command", "cmd", "method")
_HTTP_METHODS: Final = frozenset(_word_list("GET POST PUT PATCH DELETE HEAD OPTIONS"))
_QUEUE_KEYS: Final = ("topic", "queue", "queue_url", "exchange")


# --------------------------------------------------------------------------- services and their verbs

#: Named services: the target of a call to them when the arguments show no URL.
_SERVICES: Final = frozenset(
    _word_list(
        "slack github gitlab jira stripe twilio salesforce hubspot notion zendesk discord telegram s3 gcs "
        "dropbox gdrive confluence linear asana trello shopify paypal"
    )
)
_GET_LIKE: Final = frozenset(_word_list("fetch download browse scrape crawl"))

_DB_READ_WORDS: Final = frozenset(
    _word_list(
        "select query read get fetch find search list count lookup describe show scan aggregate explain"
    )
)
_DB_WRITE_WORDS: Final = frozenset(
    _word_list(
        "insert update delete upsert write create drop alter truncate save store put remove modify merge "
        "migrate seed import replace"
    )
)


_FILE_WRITE_WORDS: Final = frozenset(
    _word_list(
        "write save append create delete remove rm unlink move mv rename copy cp mkdir rmdir touch edit "
        "patch modify update put truncate overwrite replace insert chmod chown store dump str_replace "
        "undo"
    )
)
_FILE_READ_WORDS: Final = frozenset(
    _word_list(
        "read load open get list ls cat view stat exists find glob search grep head tail show fetch scan "
        "walk inspect tree"
    )
)

#: Either direction: a file verb of any kind (computed once, not per call).
_FILE_WORDS_ANY: Final = _FILE_READ_WORDS | _FILE_WRITE_WORDS

_QUEUE_SYSTEMS: Final = frozenset(
    _word_list(
        "kafka sqs sns rabbit rabbitmq amqp pubsub nats kinesis mq zeromq zmq eventbridge eventhub "
        "eventhubs servicebus pulsar mqtt jms activemq redpanda"
    )
)

_CACHE_WRITE_WORDS: Final = frozenset(
    _word_list(
        "set put write store save delete del remove invalidate evict expire clear flush incr decr hset "
        "setex add update purge mset lpush rpush sadd append"
    )
)
_CACHE_READ_WORDS: Final = frozenset(
    _word_list(
        "get read fetch load lookup exists has hget mget keys scan ttl peek retrieve lrange smembers stats "
        "info status size"
    )
)
_CACHE_SYSTEMS: Final = ("redis", "memcached", "memcache", "valkey", "keydb")


# --------------------------------------------------------------------------- what a tool's name says

_EMBED_WORDS: Final = frozenset(_word_list("embed embeds embedding embeddings vectorize vectorise"))
_EMAIL_WORDS: Final = frozenset(_word_list("email emails mail smtp sendmail gmail mailgun sendgrid postmark"))
_EMAIL_SEND_WORDS: Final = frozenset(_word_list("send compose reply forward deliver smtp sendmail notify"))
_EMAIL_NOT_SEND: Final = frozenset(
    _word_list(
        "read get list search fetch check find open download parse validate verify lookup extract format "
        "draft delete archive"
    )
)
_AUTH_WORDS: Final = frozenset(
    _word_list(
        "auth authenticate authentication authorize authorise authorization oauth oauth2 login logon "
        "signin sso saml mfa otp 2fa credential credentials authz"
    )
)
_TOKEN_VERBS: Final = frozenset(_word_list("get request refresh fetch obtain issue exchange mint new create"))
_PERMISSION_WORDS: Final = frozenset({"permission", "permissions", "acl"})
_QUEUE_NOUNS: Final = frozenset({"queue", "queues"}) | _QUEUE_SYSTEMS
_QUEUE_SEND: Final = frozenset(_word_list("publish produce enqueue send push emit dispatch"))
_QUEUE_RECV: Final = frozenset(_word_list("consume dequeue receive poll pull subscribe"))
_EVENT_NOUNS: Final = frozenset({"message", "messages", "event", "events"})
_CACHE_WORDS: Final = frozenset({"cache", "cached", "caching", *_CACHE_SYSTEMS})
_DB_WORDS: Final = frozenset(
    _word_list(
        "sql db database databases postgres postgresql psql mysql mariadb sqlite sqlite3 mssql tsql "
        "oracle snowflake bigquery redshift duckdb clickhouse athena trino presto cassandra cql dynamodb "
        "mongo mongodb supabase warehouse"
    )
)
_TRANSFER_WORDS: Final = frozenset({"upload", "download"})
_FILE_WORDS: Final = frozenset(
    _word_list("file files filesystem fs directory directories dir folder folders")
)
_FILE_TOOLS: Final = frozenset(_word_list("ls cat mkdir rmdir touch glob open readfile writefile editor"))
_LLM_WORDS: Final = frozenset(
    _word_list(
        "llm llms chat chatgpt completion completions gpt openai anthropic claude gemini ollama mistral "
        "llama bedrock"
    )
)
#: Verbs of tools that work on text *about* an operation (format_sql, parse_url) rather than doing it.
_TEXT_TOOL_WORDS: Final = frozenset(
    _word_list(
        "format lint validate parse prettify beautify generate translate explain highlight tokenize "
        "escape sanitize encode decode normalize"
    )
)
_CHAT_APPS: Final = frozenset(_word_list("slack teams discord telegram whatsapp"))
_HTTP_WORDS: Final = frozenset(
    _word_list(
        "http https curl wget api rest graphql url urls web website webpage browse browser scrape scraper "
        "crawl crawler google bing serpapi tavily duckduckgo wikipedia internet online slack github "
        "gitlab jira stripe twilio salesforce hubspot notion zendesk discord telegram"
    )
)
_SHELL_WORDS: Final = frozenset(
    _word_list(
        "shell bash sh zsh terminal command cmd exec subprocess powershell console python code repl "
        "script jupyter notebook"
    )
)
