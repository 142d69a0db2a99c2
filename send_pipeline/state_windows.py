"""States whose law sets a stricter texting window than the firm's, in the lead's local
time. One table, easy to retune: a state listed here intersects the firm's window.

Florida (Telephone Solicitation Act, 2021), Oklahoma (Telephone Solicitation Act, 2022)
and Maryland (Stop the Spam Calls Act, 2023): 8:00 AM to 8:00 PM.
"""

from __future__ import annotations

# USPS state code -> (start, end) in minutes after local midnight.
STATE_WINDOWS: dict[str, tuple[int, int]] = {
    "FL": (8 * 60, 20 * 60),
    "OK": (8 * 60, 20 * 60),
    "MD": (8 * 60, 20 * 60),
}
