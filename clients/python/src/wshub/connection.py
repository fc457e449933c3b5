"""Opening one WebSocket connection to the hub, up to its ``connection.established``.

Also what a close code means for the client: stop, ask for a new token, or reconnect.
"""

from __future__ import annotations

import asyncio
from typing import Optional
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI

from .errors import ClientClosed, ConnectFailed, Unauthorized
from .messages import Established, ErrorMessage, parse_message

#: Close codes after which the client does not reconnect (see README, "Staying connected").
STOP_CODES = {1000: "closed by the server", 1008: "policy violation"}
#: Close codes that mean "bad or expired token": reconnect only with a new token from get_token.
AUTH_CODES = {4001, 4002}
#: HTTP statuses of a refused handshake that retrying will not fix.
FATAL_STATUSES = {400, 401, 403, 404, 405}


def connection_url(url: str, client_id: Optional[str], reconnection_token: Optional[str]) -> str:
    """``url`` with the ``client_id`` and ``reconnection_token`` query parameters set."""
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query) if k not in ("client_id", "reconnection_token")]
    if client_id is not None:
        query.append(("client_id", client_id))
    if reconnection_token:
        query.append(("reconnection_token", reconnection_token))
    return urlunsplit(parts._replace(query=urlencode(query)))


async def open_connection(
    url: str, token: Optional[str], *, timeout: float, max_size: Optional[int]
) -> tuple[ClientConnection, Established]:
    """One connection attempt; raises :class:`ConnectFailed`, the hub's typed error (a refused
    token: :class:`Unauthorized`) or :class:`ClientClosed`."""
    headers = {"Authorization": f"Bearer {token}"} if token else None
    try:
        # The client sends its own application pings (see Client._heartbeat).
        ws = await ws_connect(
            url, additional_headers=headers, open_timeout=timeout, ping_interval=None, max_size=max_size, compression=None
        )
    except InvalidStatus as error:
        status = error.response.status_code
        raise ConnectFailed(f"the hub refused the WebSocket upgrade with HTTP {status}", status=status) from None
    except (OSError, InvalidHandshake, InvalidURI, asyncio.TimeoutError) as error:
        raise ConnectFailed(f"cannot connect to {url.split('?')[0]}: {error or type(error).__name__}") from None
    try:
        message = parse_message(await asyncio.wait_for(ws.recv(), timeout))
    except ConnectionClosed as closed:
        raise closed_error(closed.rcvd.code if closed.rcvd else 1006, closed.rcvd.reason if closed.rcvd else "") from None
    except asyncio.TimeoutError:
        await ws.close()
        raise ConnectFailed("no connection.established within the connect timeout") from None
    except ValueError as error:
        await ws.close()
        raise ConnectFailed(f"the hub sent an unreadable first message: {error}") from None
    if isinstance(message, ErrorMessage):
        # A refused token: the hub closes right after (4001); report the typed error.
        try:
            await asyncio.wait_for(ws.wait_closed(), timeout)
        except asyncio.TimeoutError:
            await ws.close()
        raise message.error
    if not isinstance(message, Established):
        await ws.close()
        raise ConnectFailed(f"expected connection.established, got {getattr(message, 'type', message)!r}")
    return ws, message


def closed_error(code: int, reason: str) -> BaseException:
    if code in AUTH_CODES:
        return Unauthorized(f"connection closed with {code}: {reason}")
    return ClientClosed(f"connection closed with {code}: {reason}", code=code, reason=reason)
