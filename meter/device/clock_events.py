"""Clock-event (throttle) reasons: why a GPU's clocks are below their maximum, by name.

This is the seam's vocabulary, shared by every backend: ``Reading.clock_event_mask`` holds these
bits whoever made the GPU. They are laid out as NVML's (``nvmlDeviceGetCurrentClocksEventReasons``,
named as in nvml.h), so the NVIDIA backend passes its mask through; another vendor's backend
sets the bit of each reason its own library reports (amdsmi's throttle status: power, thermal...).
"""

from __future__ import annotations

# Clock-event (throttle) reasons: nvmlDeviceGetCurrentClocksEventReasons bits, named as in nvml.h.
CLOCK_EVENT_REASONS: dict[int, str] = {
    0x1: "gpu_idle",
    0x2: "applications_clocks_setting",
    0x4: "sw_power_cap",
    0x8: "hw_slowdown",
    0x10: "sync_boost",
    0x20: "sw_thermal_slowdown",
    0x40: "hw_thermal_slowdown",
    0x80: "hw_power_brake_slowdown",
    0x100: "display_clock_setting",
    0x200: "board_limit",
    0x400: "reliability",
}
# Reasons that mean the clocks were pulled down by power or heat, not by idleness or settings.
THROTTLING_REASONS = frozenset(
    {
        "sw_power_cap",
        "hw_slowdown",
        "sw_thermal_slowdown",
        "hw_thermal_slowdown",
        "hw_power_brake_slowdown",
        "board_limit",
        "reliability",
    }
)


def decode_clock_events(mask: int | None) -> list[str]:
    """Names of the bits set in a clock-event mask; unknown bits as hex."""
    if not mask:
        return []
    names = [name for bit, name in CLOCK_EVENT_REASONS.items() if mask & bit]
    unknown = mask & ~sum(CLOCK_EVENT_REASONS)
    if unknown:
        names.append(f"unknown_0x{unknown:x}")
    return names
