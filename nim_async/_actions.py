"""The NIM actions this client calls, by their path without ``.action``."""

from __future__ import annotations

__all__ = [
    "ACTIONS",
    "BROADCAST",
    "CLEAN_NOS",
    "DEL_BROADCAST",
    "DEL_MSG",
    "DEL_MSG_ONE_WAY",
    "DEL_ROAM_SESSION",
    "FILE_UPLOAD",
    "MARK_READ",
    "MARK_TEAM_READ",
    "QUERY_SESSION_MSG",
    "RECALL",
    "SEND_ATTACH_MSG",
    "SEND_BATCH_ATTACH_MSG",
    "SEND_BATCH_MSG",
    "SEND_MSG",
    "UPLOAD",
    "canonical_action",
]

SEND_MSG = "msg/sendMsg"
SEND_BATCH_MSG = "msg/sendBatchMsg"
SEND_ATTACH_MSG = "msg/sendAttachMsg"
SEND_BATCH_ATTACH_MSG = "msg/sendBatchAttachMsg"
UPLOAD = "msg/upload"
FILE_UPLOAD = "msg/fileUpload"
CLEAN_NOS = "job/nos/del"
RECALL = "msg/recall"
BROADCAST = "msg/broadcastMsg"
DEL_MSG_ONE_WAY = "msg/delMsgOneWay"
DEL_ROAM_SESSION = "msg/delRoamSession"
# The rest of the message service, as the official server SDKs have it (Java SDK
# MessageV1UrlContext: /msg/markReadMsg.action, ..., /history/delBroadcastMsgById.action).
MARK_READ = "msg/markReadMsg"
MARK_TEAM_READ = "msg/markReadTeamMsg"
DEL_MSG = "msg/delMsg"
DEL_BROADCAST = "history/delBroadcastMsgById"
# The one-to-one cloud history (Java SDK HistoryV1UrlContext:
# QUERY_SESSION_MSG = "/history/querySessionMsg.action").
QUERY_SESSION_MSG = "history/querySessionMsg"

ACTIONS = frozenset(
    {
        SEND_MSG,
        SEND_BATCH_MSG,
        SEND_ATTACH_MSG,
        SEND_BATCH_ATTACH_MSG,
        UPLOAD,
        FILE_UPLOAD,
        CLEAN_NOS,
        RECALL,
        BROADCAST,
        DEL_MSG_ONE_WAY,
        DEL_ROAM_SESSION,
        MARK_READ,
        MARK_TEAM_READ,
        DEL_MSG,
        DEL_BROADCAST,
        QUERY_SESSION_MSG,
    }
)
# "sendMsg" → "msg/sendMsg", "delBroadcastMsgById" → "history/delBroadcastMsgById".
_BY_NAME = {path.rsplit("/", 1)[1]: path for path in ACTIONS if not path.startswith("job/")}


def canonical_action(name: str) -> str:
    """Return an action's path form: ``"sendMsg"`` or ``"msg/sendMsg.action"`` → ``"msg/sendMsg"``.

    Raises:
        ConfigurationError: ``name`` is not one of the message actions.
    """
    path = name.removesuffix(".action") if isinstance(name, str) else ""
    path = _BY_NAME.get(path, path)
    if path not in ACTIONS:
        from ._config import refuse

        raise refuse("action", f"one of {', '.join(sorted(ACTIONS))}", name)
    return path
