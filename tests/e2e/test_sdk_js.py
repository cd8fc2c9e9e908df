"""The JavaScript client (static/sdk/everruns.js) in Node against the stack:
tests/ui/sdk.mjs, one test case per check (see nodejs.py)."""

import unittest

from nodejs import checks_case

SdkJs = checks_case("SdkJs", "sdk.mjs", "sdk-js", [
    "sessions", "errors", "stream_turn", "filters", "resume_after_drops",
    "idle_timeout", "cancel", "end_on_delete", "session_fs", "images",
    "tool_approvals", "tool_results",
], timeout=240)

if __name__ == "__main__":
    unittest.main()
