"""Which checkpointed configuration of a peer meets bptt at a budget's row: the peer is given at
most the working memory bptt was measured to take there, and within it the longest segments (the
fewest checkpoints, and the least per-segment overhead); where no configuration gets that low,
the one of least memory, marked as not matched. A negative measurement (the call's resident set
grew by less than the arrays it returned: memory released during the call, a warm-up's cache,
hid its need) measured nothing, and is passed over."""


def matched_configuration(curve: list[dict], target_bytes: int) -> dict:
    """curve: the peer's measured configurations, each {"segment": steps or None (no
    checkpointing), "working_bytes": n}; target_bytes: bptt's measured working memory. The
    chosen entry, with "within": whether its memory is at most the target."""
    measured = [entry for entry in curve if measured_bytes(entry) is not None]
    if not measured:
        raise ValueError("curve: expected at least one configuration with its memory measured")
    within = [entry for entry in measured if entry["working_bytes"] <= target_bytes]
    if within:
        longest = max(within, key=segment_order)
        return {**longest, "within": True}
    least = min(measured, key=lambda entry: (entry["working_bytes"], -segment_order(entry)))
    return {**least, "within": False}


def segment_order(entry: dict) -> float:
    """No checkpointing counts as the longest segment of all."""
    return float("inf") if entry["segment"] is None else entry["segment"]


def measured_bytes(entry: dict) -> int | None:
    """The entry's working memory, None where it was not measured or measured below zero."""
    working = entry.get("working_bytes")
    return None if working is None or working < 0 else working
