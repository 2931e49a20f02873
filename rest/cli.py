"""``cogent-rest`` (also ``python -m rest``): serve the REST API and manage API keys."""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from collections.abc import Callable

from sqlalchemy.orm import Session

from base.db import make_engine, redact
from base.errors import CogentError, ConfigError
from base.migrate import DB_URL_ENV
from models.access import ROLE_SITE, ROLES
from rest.bulkwrite import WRITE_PATHS
from rest.keys import KeyProblem, create_key, list_keys, revoke_key
from rest.settings import DEFAULT_PORT, MIB, Settings

EPILOG = f"The database URL comes from --db, else the {DB_URL_ENV} environment variable."


def _db_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--db",
        metavar="URL",
        help=f"database URL, e.g. mysql://user:pass@localhost/cogent (default ${DB_URL_ENV})",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cogent-rest",
        description="The cogent-sync central REST server and its API keys.",
        epilog=EPILOG,
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    serve = sub.add_parser(
        "serve",
        help="run the REST server (uvicorn)",
        description="Run the REST server. It refuses to start unless the database is at the "
        "schema revision this code expects (alembic upgrade head).",
        epilog=EPILOG,
    )
    serve.add_argument(
        "--db",
        metavar="URL",
        action="append",
        help=f"database URL, e.g. mysql://user:pass@localhost/cogent (default ${DB_URL_ENV}). "
        "Repeat it for the nodes of a MariaDB Galera cluster: connections go to the first "
        "node that works and move to the next when it fails (in "
        f"${DB_URL_ENV}: the URLs separated by spaces)",
    )
    serve.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default %(default)s)"
    )
    serve.add_argument("--port", type=int, default=DEFAULT_PORT, help="port (default %(default)s)")
    serve.add_argument(
        "--max-body",
        type=int,
        default=32 * MIB,
        metavar="BYTES",
        help="largest request body, also after decompression (default %(default)s)",
    )
    serve.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
    serve.add_argument(
        "--statement-timeout",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="longest one SQL statement may run on MariaDB/MySQL or PostgreSQL before the "
        "database stops it and the request gets 503 (default %(default)s)",
    )
    serve.add_argument(
        "--max-batches",
        type=int,
        default=0,
        metavar="N",
        help="batches one worker applies at once; more are answered 429 with Retry-After "
        "(default 0: the database pool's size, 4 on SQLite)",
    )
    serve.add_argument(
        "--warm-interval",
        type=float,
        default=600.0,
        metavar="SECONDS",
        help="how often each worker fills the house pages' cache of daily averages in the "
        "background, so a year's plot is quick on its first view (0: never; default "
        "%(default)s)",
    )
    serve.add_argument(
        "--write-path",
        choices=WRITE_PATHS,
        default="auto",
        help="how new rows are written: insert (multi-row INSERT), bulk (LOAD DATA LOCAL "
        "INFILE on MariaDB/MySQL, COPY on PostgreSQL) or auto: bulk, the faster as measured, "
        "and INSERT where the database refuses LOCAL INFILE (default %(default)s)",
    )
    serve.add_argument(
        "--body-timeout",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="how long a request's whole body may take to arrive before the request is "
        "answered 408 (default %(default)s)",
    )
    serve.add_argument(
        "--header-timeout",
        type=float,
        default=20.0,
        metavar="SECONDS",
        help="how long a request's headers may take to arrive before the connection is closed "
        "(default %(default)s)",
    )
    serve.add_argument(
        "--shutdown-timeout",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="how long SIGTERM waits for requests in progress before stopping anyway "
        "(default %(default)s)",
    )
    serve.add_argument(
        "--silent-after",
        type=float,
        default=900.0,
        metavar="SECONDS",
        help="the fleet page calls a station silent after this long without contact, late "
        "after a third of it (default %(default)s: three 5-minute push intervals)",
    )
    serve.add_argument(
        "--pool-timeout",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="how long a request waits for a free database connection before it gets 503 "
        "with Retry-After (default %(default)s)",
    )
    serve.add_argument(
        "--log-level",
        default="info",
        choices=("critical", "error", "warning", "info", "debug"),
        help="log level (default %(default)s)",
    )

    keys = sub.add_parser(
        "keys",
        help="create, list and revoke API keys",
        description="Manage API keys. A key is printed once, when created; only its hash is kept.",
        epilog=EPILOG,
    )
    ksub = keys.add_subparsers(dest="keys_command", metavar="ACTION", required=True)
    create = ksub.add_parser(
        "create",
        help="create a key and print it (once)",
        description="Create a key. Site keys read and write only their site's houses; "
        "readonly keys read everything; admin keys do everything.",
        epilog=EPILOG,
    )
    _db_option(create)
    create.add_argument("--site", help="the base station's site name (created if new)")
    create.add_argument(
        "--role", default=ROLE_SITE, choices=ROLES, help="what the key may do (default site)"
    )
    listing = ksub.add_parser(
        "list",
        help="list keys (never the keys themselves)",
        description="List keys.",
        epilog=EPILOG,
    )
    _db_option(listing)
    listing.add_argument("--site", help="only this site's keys")
    revoke = ksub.add_parser(
        "revoke",
        help="revoke a key by id",
        description="Revoke a key; it stops working at once and stays listed.",
        epilog=EPILOG,
    )
    _db_option(revoke)
    revoke.add_argument("id", type=int, help="the key's id, from 'keys list'")

    users = sub.add_parser(
        "users",
        help="accounts that log in for a key",
        description="Accounts: a base station logs in with its account ('RestPusher.py login') "
        "and receives its site's key. Passwords are kept as Argon2 hashes.",
        epilog=EPILOG,
    )
    usub = users.add_subparsers(dest="users_command", metavar="ACTION", required=True)
    ucreate = usub.add_parser("create", help="create an account (asks for its password)",
                              description="Create an account; the password is asked twice "
                              "(or read from standard input with --password-stdin).",
                              epilog=EPILOG)
    _db_option(ucreate)
    ucreate.add_argument("--name", required=True, help="the account's name")
    ucreate.add_argument("--site", help="the base station's site (created if new)")
    ucreate.add_argument("--role", default=ROLE_SITE, choices=ROLES,
                         help="site accounts get keys by logging in (default site)")
    ucreate.add_argument("--password-stdin", action="store_true",
                         help="read the password from standard input (for scripts)")
    ulist = usub.add_parser("list", help="list accounts", description="List accounts.",
                            epilog=EPILOG)
    _db_option(ulist)
    udisable = usub.add_parser("disable", help="disable an account",
                               description="Disable an account: it can no longer log in. Keys "
                               "it obtained keep working until revoked ('keys revoke').",
                               epilog=EPILOG)
    _db_option(udisable)
    udisable.add_argument("name", help="the account's name")

    houses = sub.add_parser(
        "houses",
        help="list houses and assign them to sites",
        description="Which site owns which house. A site's key writes only its houses; houses "
        "on an adopted Cogent-house server belong to no site until assigned.",
        epilog=EPILOG,
    )
    hsub = houses.add_subparsers(dest="houses_command", metavar="ACTION", required=True)
    hlist = hsub.add_parser("list", help="list houses and their sites",
                            description="List houses: id, deployment, address, site.",
                            epilog=EPILOG)
    _db_option(hlist)
    hlist.add_argument("--site", help="only this site's houses")
    hlist.add_argument("--unowned", action="store_true", help="only houses of no site")
    assign = hsub.add_parser(
        "assign", help="give houses to a site",
        description="Give the houses of a deployment (and/or with an address) to a site, so "
        "that the site's key can push into them. A house of another site is refused unless "
        "--force.", epilog=EPILOG)
    _db_option(assign)
    assign.add_argument("--site", required=True, help="the site (created if new)")
    assign.add_argument("--deployment", help="the houses of this deployment")
    assign.add_argument("--address", help="the house(s) with this address")
    assign.add_argument("--force", action="store_true",
                        help="also take houses another site owns")
    return parser


def _db_url(args: argparse.Namespace) -> str:
    url: str | None = args.db or os.environ.get(DB_URL_ENV)
    if not url:
        raise ConfigError(f"no database: pass --db URL or set {DB_URL_ENV}")
    print(f"cogent-rest: database {redact(url)}", file=sys.stderr, flush=True)
    return url


def _db_nodes(args: argparse.Namespace) -> list[str]:
    """serve's database: the URLs of --db (repeated for a cluster's nodes), else those of
    the environment variable, separated by spaces."""
    urls: list[str] = args.db or os.environ.get(DB_URL_ENV, "").split()
    if not urls:
        raise ConfigError(f"no database: pass --db URL or set {DB_URL_ENV}")
    shown = ", ".join(redact(u) for u in urls)
    print(f"cogent-rest: database {shown}" if len(urls) == 1
          else f"cogent-rest: database nodes {shown} (the first that works is used)",
          file=sys.stderr, flush=True)
    return urls


def _with_session(url: str, work: Callable[[Session], None]) -> None:
    engine = make_engine(url)
    try:
        with Session(engine) as session:
            work(session)
            session.commit()
    finally:
        engine.dispose()


def _cmd_serve(args: argparse.Namespace) -> int:
    from rest.server import serve

    if args.max_body < 1024:
        raise ConfigError("--max-body must be at least 1024 bytes")
    if args.workers < 1:
        raise ConfigError("--workers must be at least 1")
    if not 0 <= args.max_batches <= 10_000:
        raise ConfigError(f"--max-batches: {args.max_batches} is out of range; use 0..10000")
    if args.warm_interval and not 1 <= args.warm_interval <= 86_400:
        raise ConfigError(f"--warm-interval: {args.warm_interval:g} is out of range; use 0 "
                          f"(never) or 1..86400 seconds")
    for option, value in (("--statement-timeout", args.statement_timeout),
                          ("--pool-timeout", args.pool_timeout),
                          ("--body-timeout", args.body_timeout),
                          ("--header-timeout", args.header_timeout),
                          ("--shutdown-timeout", args.shutdown_timeout),
                          ("--silent-after", args.silent_after)):
        if not 0.1 <= value <= 86_400:
            raise ConfigError(f"{option}: {value:g} is out of range; use 0.1..86400 seconds")
    nodes = _db_nodes(args)
    serve(
        Settings(
            db_url=nodes[0],
            db_failover=tuple(nodes[1:]),
            host=args.host,
            port=args.port,
            max_body=args.max_body,
            workers=args.workers,
            log_level=args.log_level,
            statement_timeout=args.statement_timeout,
            pool_timeout=args.pool_timeout,
            max_batches=args.max_batches,
            write_path=args.write_path,
            body_timeout=args.body_timeout,
            header_timeout=args.header_timeout,
            shutdown_timeout=args.shutdown_timeout,
            silent_after=args.silent_after,
            warm_interval=args.warm_interval,
        )
    )
    return 0


def _cmd_keys(args: argparse.Namespace) -> int:
    url = _db_url(args)
    if args.keys_command == "create":

        def create(session: Session) -> None:
            key, plaintext = create_key(session, args.site, args.role)
            session.commit()
            where = f"site {args.site!r}" if args.site else "no site"
            print(f"created {args.role} key {key.id} for {where}; it is shown only now:")
            print(plaintext)

        _with_session(url, create)
    elif args.keys_command == "list":

        def show(session: Session) -> None:
            rows = list_keys(session, args.site)
            print(
                f"{'id':>4}  {'role':8}  {'site':20}  {'key starts':14}  {'created':16}  "
                f"{'last used':16}  revoked"
            )
            for info in rows:
                k = info.key
                print(
                    f"{k.id:>4}  {k.role:8}  {(info.site or '-'):20}  {k.prefix + '…':14}  "
                    f"{_when(k.created)}  {_when(k.lastUsed)}  {_when(k.revoked, '')}"
                )

        _with_session(url, show)
    else:

        def revoke(session: Session) -> None:
            key = revoke_key(session, args.id)
            print(f"key {key.id} ({key.prefix}…) is revoked")

        _with_session(url, revoke)
    return 0


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\n")
    first = getpass.getpass("password: ")
    if getpass.getpass("again: ") != first:
        raise KeyProblem("the two passwords differ; nothing was created")
    return first


def _cmd_users(args: argparse.Namespace) -> int:
    from rest.accounts import create_account, disable_account, list_accounts

    url = _db_url(args)
    if args.users_command == "create":
        password = _read_password(args.password_stdin)

        def create(session: Session) -> None:
            create_account(session, args.name, password, args.role, args.site)
            where = f"site {args.site!r}" if args.site else "no site"
            print(f"created {args.role} account {args.name!r} for {where}")

        _with_session(url, create)
    elif args.users_command == "list":

        def show(session: Session) -> None:
            print(f"{'name':24}  {'role':8}  {'site':20}  {'last login':16}  state")
            for a in list_accounts(session):
                state = "disabled" if a.disabled else (
                    f"locked until {_when(a.locked_until)}" if a.locked_until else "active")
                print(f"{a.name:24}  {a.role:8}  {(a.site or '-'):20}  "
                      f"{_when(a.last_login)}  {state}")

        _with_session(url, show)
    else:

        def disable(session: Session) -> None:
            disable_account(session, args.name)
            print(f"account {args.name!r} is disabled")

        _with_session(url, disable)
    return 0


def _cmd_houses(args: argparse.Namespace) -> int:
    from rest.houses import assign_houses, list_houses

    url = _db_url(args)
    if args.houses_command == "list":

        def show(session: Session) -> None:
            print(f"{'id':>5}  {'deployment':24}  {'address':32}  site")
            for h in list_houses(session, args.site, args.unowned):
                print(f"{h.id:>5}  {(h.deployment or '-'):24}  {(h.address or '-'):32}  "
                      f"{h.site or '- (no site: assign it)'}")

        _with_session(url, show)
        return 0

    def assign(session: Session) -> None:
        done = assign_houses(session, args.site, deployment=args.deployment,
                             address=args.address, force=args.force)
        print(f"{len(done)} house(s) now belong to site {args.site!r}: "
              + ", ".join(repr(h.address) for h in done[:10]) + (" …" if len(done) > 10 else ""))

    _with_session(url, assign)
    return 0


def _when(value: object, empty: str = "-") -> str:
    return f"{value:%Y-%m-%d %H:%M}" if value is not None else f"{empty:16}"


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "serve":
            return _cmd_serve(args)
        if args.command == "houses":
            return _cmd_houses(args)
        if args.command == "users":
            return _cmd_users(args)
        return _cmd_keys(args)
    except (CogentError, KeyProblem) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
