"""The gateway's composition root: ``text3d gateway`` serves, ``text3d gateway keys ...`` manages keys.

    text3d gateway [--gateway.port 8095] [--gateway.store FILE|postgresql://...] [--subtensor.network ...]
    text3d gateway keys create --name NAME [--per-minute N] [--per-day N] [--concurrency N] [--json]
    text3d gateway keys list [--json]
    text3d gateway keys revoke ID_OR_NAME

The gateway holds no wallet and no models: settings -> store (SQLite or PostgreSQL), chain
(read-only: the workers' validator permits), worker gate, app -> uvicorn on the bound socket,
with ``X-Forwarded-For``/``-Proto`` trusted from ``--gateway.forwarded_allow_ips`` only (the TLS
proxy in front of it). ``keys create`` prints the new key alone on stdout (the sentence around it
goes to stderr), so ``KEY=$(text3d gateway keys create --name app)`` works; only its hash is kept.

Exit statuses: 0 done, 1 the store or chain cannot be reached, 2 usage, 78 a setting to change.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import re
import sys
from datetime import datetime, timezone
from typing import Sequence

from text3d.common.argparsing import CommandParser
from text3d.gateway.quotas import Limits
from text3d.gateway.store import JobPolicy, JobStore, is_postgres_url, open_store
from text3d.protocol.errors import EXIT_CONFIG, EXIT_FAILURE, EXIT_OK, ConfigError, GatewayError, ValidatorFault
from text3d.settings import GatewaySettings, Settings, load_settings

__all__ = ["main", "keys_main", "policy_of", "open_gateway_store", "shown_location"]

log = logging.getLogger("text3d.gateway")


def policy_of(section: GatewaySettings) -> JobPolicy:
    return JobPolicy(lease_s=section.lease_s, max_attempts=section.max_attempts, job_timeout_s=section.job_timeout_s,
                     max_jobs_per_worker=section.worker_max_jobs)


def shown_location(location: str) -> str:
    """The store's location for logs: a PostgreSQL URL without its password."""
    return re.sub(r"(://[^:/@]+):[^@/]*@", r"\1:***@", location) if is_postgres_url(location) else location


def open_gateway_store(settings: Settings) -> JobStore:
    return open_store(settings.gateway_store(), policy_of(settings.gateway))


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["keys"]:
        return keys_main(argv[1:])
    from text3d.chain.factory import open_chain
    from text3d.gateway.app import create_app
    from text3d.gateway.prompts import PromptPolicy
    from text3d.gateway.workers import WorkerGate
    from text3d.ops.logs import setup_logging
    from text3d.ops.net import check_port_free

    try:
        settings = load_settings("gateway", argv, prog="text3d gateway", require_netuid=True)
        section = settings.gateway
        setup_logging(settings.logging, role="gateway")
        try:
            prompts = PromptPolicy.from_file(section.max_prompt_chars, section.blocklist)
        except OSError as exc:
            raise ConfigError(f"--gateway.blocklist {section.blocklist}: cannot read it ({exc.strerror or exc})") from None
        sock = check_port_free(section.ip, section.port, flags=("--gateway.ip", "--gateway.port"))
        store = open_gateway_store(settings)
        chain = open_chain(settings.subtensor.network, settings.netuid, chain_endpoint=settings.subtensor.chain_endpoint,
                           devnet_db=settings.devnet.db)
    except ConfigError as exc:
        print(f"text3d gateway: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except (GatewayError, ValidatorFault) as exc:
        print(f"text3d gateway: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    gate = WorkerGate(chain, store, min_stake=section.worker_min_stake, ttl_s=section.metagraph_ttl_s)
    app = create_app(section, store, gate, prompts=prompts)

    async def serve() -> None:
        import uvicorn

        config = uvicorn.Config(app, log_config=None, access_log=False, http="h11", lifespan="on",
                                proxy_headers=True, forwarded_allow_ips=section.forwarded_allow_ips,
                                timeout_keep_alive=15, limit_concurrency=2048)
        server = uvicorn.Server(config)
        host, port = sock.getsockname()[:2]
        log.info("gateway serving on http://%s:%d/ (store %s, netuid %d on %s)", host, port,
                 shown_location(settings.gateway_store()), settings.netuid, settings.subtensor.network)
        await server.serve(sockets=[sock])

    try:
        asyncio.run(serve())
    finally:
        store.close()
        chain.close()
    return EXIT_OK


# -- keys ------------------------------------------------------------------------------------


def _keys_parser() -> argparse.ArgumentParser:
    parser = CommandParser(
        prog="text3d gateway keys", description="Create, list and revoke the gateway's API keys, in the store the "
        "gateway uses: --gateway.store, else TEXT3D_GATEWAY__STORE or the --config file, else the default file.")
    commands = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    create = commands.add_parser("create", help="create a key and print it once")
    create.add_argument("--name", required=True, help="who the key is for (unique among active keys)")
    create.add_argument("--per-minute", type=int, default=None, help="jobs a minute (default: --gateway.key_per_minute)")
    create.add_argument("--per-day", type=int, default=None, help="jobs a day (default: --gateway.key_per_day)")
    create.add_argument("--concurrency", type=int, default=None,
                        help="jobs queued or running at once (default: --gateway.key_concurrency)")
    create.add_argument("--json", action="store_true", help="print the key and its limits as JSON")
    listing = commands.add_parser("list", help="list keys (never their secrets)")
    listing.add_argument("--json", action="store_true", help="print JSON")
    revoke = commands.add_parser("revoke", help="revoke a key by id or name: it stops working at once")
    revoke.add_argument("key", metavar="ID_OR_NAME", help="the key's id (k_...) or name")
    for command in (create, listing, revoke):
        command.add_argument("--gateway.store", dest="store", default=None, metavar="TEXT",
                             help="SQLite file or postgresql:// URL (default: as text3d gateway)")
        command.add_argument("--config", default=None, metavar="FILE", help="TOML or JSON settings file")
    return parser


def _when(t: float | None) -> str:
    return "-" if t is None else datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def keys_main(argv: Sequence[str]) -> int:
    """``text3d gateway keys ACTION ...``: the key table of the store the gateway's settings name."""
    args = _keys_parser().parse_args(list(argv))
    given = (["--gateway.store", args.store] if args.store else []) + (["--config", args.config] if args.config else [])
    try:
        settings = load_settings("gateway", given, prog="text3d gateway keys")
        section = settings.gateway
        store = open_gateway_store(settings)
    except ConfigError as exc:
        print(f"text3d gateway keys: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except GatewayError as exc:
        print(f"text3d gateway keys: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    try:
        if args.action == "create":
            try:
                limits = Limits(args.per_minute or section.key_per_minute, args.per_day or section.key_per_day,
                                args.concurrency or section.key_concurrency)
                record, secret = store.create_key(args.name, limits)
            except ValueError as exc:
                print(f"text3d gateway keys: {exc}", file=sys.stderr)
                return EXIT_CONFIG
            if args.json:
                print(json.dumps({"id": record.id, "name": record.name, "key": secret, **vars(limits)}))
            else:
                print(f"created key {record.id} for {record.name!r}: {limits.per_minute} jobs a minute, "
                      f"{limits.per_day} a day, {limits.concurrency} at once. The key is shown once, now:",
                      file=sys.stderr)
                print(secret)
            return EXIT_OK
        if args.action == "list":
            records = store.list_keys()
            if args.json:
                print(json.dumps([{"id": r.id, "name": r.name, **vars(r.limits), "created_at": r.created_at,
                                   "revoked_at": r.revoked_at} for r in records]))
                return EXIT_OK
            print(f"{'id':<16} {'name':<24} {'/min':>6} {'/day':>8} {'at once':>7}  {'created':<20} status")
            for r in records:
                status = "active" if r.active else f"revoked {_when(r.revoked_at)}"
                print(f"{r.id:<16} {r.name[:24]:<24} {r.limits.per_minute:>6} {r.limits.per_day:>8} "
                      f"{r.limits.concurrency:>7}  {_when(r.created_at):<20} {status}")
            return EXIT_OK
        revoked = store.revoke_key(args.key)
        if revoked is None:
            print(f"text3d gateway keys: no active key has the id or name {args.key!r}", file=sys.stderr)
            return EXIT_FAILURE
        print(f"revoked key {revoked.id} ({revoked.name})")
        return EXIT_OK
    except GatewayError as exc:
        print(f"text3d gateway keys: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    finally:
        store.close()
