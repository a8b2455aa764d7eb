// Runs packaging/polkit/50-hostwarden.rules against a stand-in of polkitd's JavaScript API
// (polkit.addRule, polkit.Result, action.id/lookup, subject.user) and checks which requests it
// grants. Usage: node polkit-rule.js RULES_FILE. Exit 0 when every case holds.
"use strict";
const fs = require("fs");
const vm = require("vm");

const rules = [];
const polkit = {
  Result: { YES: "yes", NO: "no", NOT_HANDLED: "not_handled" },
  addRule: (f) => rules.push(f),
};
vm.runInNewContext(fs.readFileSync(process.argv[2], "utf8"), { polkit });

function decide(user, id, details) {
  const action = { id, lookup: (k) => details[k] };
  for (const r of rules) {
    const res = r(action, { user });
    if (res !== polkit.Result.NOT_HANDLED && res !== undefined) return res;
  }
  return polkit.Result.NOT_HANDLED;
}

const manage = "org.freedesktop.systemd1.manage-units";
const cases = [
  ["hostwarden", manage, { unit: "ollama.service", verb: "restart" }, "yes"],
  ["hostwarden", "org.freedesktop.systemd1.reload-daemon", {}, "yes"],
  ["hostwarden", manage, { unit: "ollama.service", verb: "stop" }, "not_handled"],
  ["hostwarden", manage, { unit: "sshd.service", verb: "restart" }, "not_handled"],
  ["hostwarden", "org.freedesktop.systemd1.manage-unit-files", {}, "not_handled"],
  ["alice", manage, { unit: "ollama.service", verb: "restart" }, "not_handled"],
  ["alice", "org.freedesktop.systemd1.reload-daemon", {}, "not_handled"],
];
let failed = 0;
for (const [user, id, details, want] of cases) {
  const got = decide(user, id, details);
  if (got !== want) {
    failed++;
    console.error(`FAIL: ${user} ${id} ${JSON.stringify(details)}: ${got}, want ${want}`);
  }
}
console.log(`${cases.length - failed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
