"""The one place where failures become one clear line on stderr and an exit code.

User mistakes (bad flags, wrong token, unknown job, broker not running) never
show a traceback: they print `error: <what happened>: <what to do>` and exit
non-zero. Only genuine bugs (unexpected exceptions) keep their traceback.

Exit codes (documented in docs/cli.md):
  1  the broker refused the request (already exists, failed precondition, ...)
  2  a usage mistake: bad flag, bad value, or INVALID_ARGUMENT from the broker
  3  the broker could not be reached or did not answer in time
  4  the token is missing, wrong, or lacks the permission
  5  the thing asked for does not exist (NOT_FOUND)
  6  a wait ran out of time
  7  the job is pending, so it has no log yet
  8  a job waited for (`job wait`, `job submit --wait`) FAILED
  9  a job waited for was CANCELLED (and none failed)
  130 interrupted (Ctrl-C)
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, TypeGuard

if TYPE_CHECKING:
    import grpc

EXIT_REFUSED = 1
EXIT_USAGE = 2
EXIT_UNREACHABLE = 3
EXIT_AUTH = 4
EXIT_NOT_FOUND = 5
EXIT_TIMEOUT = 6  # a wait (e.g. `admin site drain`) ran out of time
EXIT_PENDING = 7  # the job has not started, so it has no log yet (`job logs` without --follow)
EXIT_JOB_FAILED = 8  # a job waited for FAILED (`job wait`, `job submit --wait`)
EXIT_JOB_CANCELLED = 9  # a job waited for was CANCELLED, and none failed
EXIT_INTERRUPTED = 130


class CliError(Exception):
    """A failure the user can fix; `str(self)` is the one line we print."""

    def __init__(self, message: str, exit_code: int = EXIT_REFUSED) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def usage_error(message: str) -> CliError:
    """A mistake in the command line itself (exit code 2)."""
    return CliError(message, EXIT_USAGE)


class FlagError(CliError):
    """A bad value for one flag (exit code 2). The typer command turns it into click's
    BadParameter, so it reads like any other bad value: "Invalid value for '--gpus': ..."."""

    def __init__(self, flag: str, message: str) -> None:
        super().__init__(message, EXIT_USAGE)
        self.flag = flag


class Quit(Exception):  # noqa: N818 - not an error: a command ends with this exit code, having said why
    """End the command with `exit_code`, printing nothing more."""

    def __init__(self, exit_code: int) -> None:
        super().__init__(exit_code)
        self.exit_code = exit_code


def _details(err: grpc.RpcError) -> str:
    details = err.details() if hasattr(err, "details") else None
    return (details or "").strip()


def _code(err: grpc.RpcError) -> grpc.StatusCode:
    import grpc

    code = err.code() if hasattr(err, "code") else None
    return code if isinstance(code, grpc.StatusCode) else grpc.StatusCode.UNKNOWN


def _looks_like_tls(details: str) -> bool:
    lowered = details.lower()
    return any(word in lowered for word in ("ssl", "handshake", "certificate", "tls"))


def explain_rpc_error(err: grpc.RpcError, broker: str | None, has_token: bool = True, has_ca: bool = False) -> CliError:
    """Map a gRPC failure to the one line that names what to fix."""
    import grpc

    from minga.common.channel import STANDBY

    code, details = _code(err), _details(err)
    where = broker or "(no broker set)"
    if code == grpc.StatusCode.UNAVAILABLE:
        if details.startswith(STANDBY):
            return CliError(
                f"broker at {where} is a {details}: add the leader to --broker or MINGA_BROKER "
                "(several addresses: HOST:PORT,HOST:PORT)",
                EXIT_UNREACHABLE,
            )
        if not has_ca and "socket closed" in details.lower():  # what a TLS-only server does to plaintext
            return CliError(
                f"broker at {where} closed the connection: if it serves TLS, pass --ca or set MINGA_CA "
                "(the broker's CA certificate)",
                EXIT_UNREACHABLE,
            )
        if _looks_like_tls(details):
            return CliError(
                f"TLS handshake with broker at {where} failed: check --ca / MINGA_CA "
                "(the broker's CA certificate) and that the broker serves TLS",
                EXIT_UNREACHABLE,
            )
        return CliError(
            f"cannot reach broker at {where}: is it running? set --broker or MINGA_BROKER",
            EXIT_UNREACHABLE,
        )
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return CliError(f"broker at {where} did not answer in time: is it overloaded? try again", EXIT_UNREACHABLE)
    if code == grpc.StatusCode.UNAUTHENTICATED:
        if not has_token:
            return CliError(
                f"broker at {where} needs a token: pass --token, set MINGA_TOKEN, or run `minga login`",
                EXIT_AUTH,
            )
        why = f" ({details})" if details else ""
        return CliError(
            f"broker at {where} rejected the token{why}: check --token / MINGA_TOKEN or run `minga login` again",
            EXIT_AUTH,
        )
    if code == grpc.StatusCode.PERMISSION_DENIED:
        return CliError(f"permission denied: {details or 'your role may not do this'}", EXIT_AUTH)
    if code == grpc.StatusCode.NOT_FOUND:
        return CliError(details or "not found", EXIT_NOT_FOUND)
    if code in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.OUT_OF_RANGE):
        return CliError(details or "the broker rejected the request as invalid", EXIT_USAGE)
    if code == grpc.StatusCode.RESOURCE_EXHAUSTED:
        return _exhausted(err, details, where)
    if code == grpc.StatusCode.UNIMPLEMENTED:
        return CliError(f"broker at {where} does not support this call: are the CLI and broker versions the same?")
    if code in (
        grpc.StatusCode.ALREADY_EXISTS,
        grpc.StatusCode.FAILED_PRECONDITION,
        grpc.StatusCode.ABORTED,
        grpc.StatusCode.CANCELLED,
    ):
        return CliError(details or code.name.lower().replace("_", " "))
    return CliError(f"broker at {where} failed ({code.name}): {details or 'no details'}")


def is_rpc_error(exc: BaseException) -> TypeGuard[grpc.RpcError]:
    """A gRPC failure; without importing grpc, which a command that never called has not loaded."""
    grpc = sys.modules.get("grpc")
    return grpc is not None and isinstance(exc, grpc.RpcError)


RETRY_AFTER_KEY = "retry-after-ms"


def retry_after(err: grpc.RpcError) -> float | None:
    """Seconds the broker asked us to wait (its `retry-after-ms` trailer), if it said."""
    try:
        trailers = getattr(err, "trailing_metadata", lambda: ())() or ()
    except Exception:  # noqa: BLE001 - not every RpcError carries trailers
        return None
    for key, value in trailers:
        if key == RETRY_AFTER_KEY:
            try:
                return max(0.0, int(value) / 1000)
            except ValueError:
                return None
    return None


def _exhausted(err: grpc.RpcError, details: str, where: str) -> CliError:
    """Over a rate limit (the broker says when to retry), or a message over the size cap."""
    if details.startswith("rate limit"):
        wait = retry_after(err)
        hint = "" if "retry in" in details or wait is None else f"; retry in {wait:.1f} s"
        return CliError(f"broker at {where} is throttling you ({details}{hint}): slow down and try again")
    if details.startswith("over the max-pending limit"):  # an account's limit: no retry helps
        return CliError(details)
    if "message larger than max" in details.lower():
        return CliError(f"the request is larger than the broker accepts ({details}): send less at once", EXIT_USAGE)
    return CliError(f"broker at {where} is out of a resource: {details or 'no details'}")


@contextlib.contextmanager
def explain(**by_code: str) -> Iterator[None]:
    """Say it better for one call: `with explain(not_found=f"no job {job_id}"):`.

    Keys are lower-case gRPC status names; the value replaces the default line
    for that status (the exit code stays the status's usual one).
    """
    try:
        yield
    except Exception as err:
        if not is_rpc_error(err):
            raise
        message = by_code.get(_code(err).name.lower())
        if message is None:
            raise
        raise CliError(message, explain_rpc_error(err, None).exit_code) from err


# The broker/token of the command being run, so a gRPC error can name them.
_current: dict[str, Any] = {"broker": None, "has_token": True, "has_ca": False}


def note_connection(broker: str | None, has_token: bool, has_ca: bool = False) -> None:
    """Remember who we talk to, for the error line (set by the client factory)."""
    _current.update(broker=broker, has_token=has_token, has_ca=has_ca)


def connected() -> bool:
    """Whether the command being run has made a broker client (so may have changed something)."""
    return _current["broker"] is not None


def fail(message: str, exit_code: int) -> int:
    """Print `error: <message>` on stderr; return `exit_code`."""
    print(f"error: {message}", file=sys.stderr, flush=True)
    return exit_code


def handle(exc: BaseException) -> int:
    """Print the one line for a known failure and return the exit code; re-raise bugs.
    Click's own exceptions (bad flags) are the root group's to handle (cli.main)."""
    if isinstance(exc, Quit):
        return exc.exit_code
    if isinstance(exc, CliError):
        return fail(str(exc), exc.exit_code)
    if is_rpc_error(exc):
        err = explain_rpc_error(exc, _current["broker"], _current["has_token"], _current["has_ca"])
        return fail(str(err), err.exit_code)
    if isinstance(exc, KeyboardInterrupt):
        print(file=sys.stderr)
        return EXIT_INTERRUPTED
    raise exc
