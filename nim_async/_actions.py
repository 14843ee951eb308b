"""The NIM actions this client calls, by their path without ``.action``."""

from __future__ import annotations

__all__ = [
    "ACTIONS",
    "BROADCAST",
    "CLEAN_NOS",
    "DEL_MSG_ONE_WAY",
    "DEL_ROAM_SESSION",
    "FILE_UPLOAD",
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
    }
)


def canonical_action(name: str) -> str:
    """Return an action's path form: ``"sendMsg"`` or ``"msg/sendMsg.action"`` → ``"msg/sendMsg"``.

    Raises:
        ValueError: ``name`` is not one of the eleven message actions.
    """
    path = name.removesuffix(".action")
    if "/" not in path:
        path = f"msg/{path}"
    if path not in ACTIONS:
        raise ValueError(f"unknown NIM action {name!r}; known: {', '.join(sorted(ACTIONS))}")
    return path
