"""The chat UI in headless Chromium (playwright-core) against the stack:
tests/ui/chat.mjs, one test case per check (see nodejs.py). Screenshots of
the main states go to tests/out/ui/ (failed-<check>.png on a failure).
The sse_killed_mid_reply check SIGKILLs everruns-sse and brings it back
with everrunsctl start."""

import unittest

from nodejs import checks_case

ChatUi = checks_case("ChatUi", "chat.mjs", "chat-ui", [
    "login", "create_session", "streamed_reply", "tool_card_and_thinking", "bash_terminal",
    "stop", "turn_error", "approval_card", "client_tool_form",
    "approval_then_result", "events_tab", "xss_renders_as_text", "files",
    "image_attach", "sse_killed_mid_reply", "narrow_dark_accessible",
    "long_session", "deleted_elsewhere", "delete_and_global_chat",
    "no_page_errors",
], timeout=600)

if __name__ == "__main__":
    unittest.main()
