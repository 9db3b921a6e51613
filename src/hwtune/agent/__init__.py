"""The measurement agent: runs on the device where a network will run and measures, for a study
elsewhere, the models it is sent (ONNX; TorchScript when allowed; never pickle) behind a token.

``hwtune agent serve --token-file FILE`` starts it; a study names it ``device: remote://host:port``
(its client is ``hwtune.hardware.RemoteDevice``). FastAPI and uvicorn are the ``agent`` extra:
``pip install -e '.[agent]'`` in a clone of hwtune.
"""

from hwtune.agent._limits import (
    DEFAULT_PORT,
    DEFAULT_TOKEN_ENV,
    MIN_TOKEN_CHARS,
    AgentSettings,
    load_token,
    token_file_is_private,
    write_token,
)

__all__ = [
    "AgentSettings",
    "DEFAULT_PORT",
    "DEFAULT_TOKEN_ENV",
    "MIN_TOKEN_CHARS",
    "load_token",
    "token_file_is_private",
    "write_token",
    "create_app",
    "serve",
    "BackgroundAgent",
]


def __getattr__(name: str):  # FastAPI/uvicorn load only when a server is made
    if name == "create_app":
        from hwtune.agent._app import create_app

        return create_app
    if name in ("serve", "BackgroundAgent"):
        from hwtune.agent import _serve

        return getattr(_serve, name)
    raise AttributeError(name)
