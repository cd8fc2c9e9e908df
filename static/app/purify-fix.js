// purify-fix.js: loaded before DOMPurify (a classic script, for the
// Content-Security-Policy). Debian 12's node-dompurify
// 2.4.1+dfsg+~2.4.0-2+deb12u1 (the backported nesting-depth fix) reads an
// undeclared `shadowNode` in sanitize(), so every call throws a
// ReferenceError. This global, at depth 0, turns that stray check into a
// no-op; the per-node depth checks of the fix still run. Other DOMPurify
// builds never read it.
if (!('shadowNode' in globalThis)) globalThis.shadowNode = { __depth: 0 };
