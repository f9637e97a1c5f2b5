// The client without VS Code: `vscode` and the language client stubbed, activate() must start `cnndsl lsp`
// (or the configured command) over stdio for .cnn documents, with the inlay hint setting, and deactivate()
// must stop it. Run by `npm test` and tests/test_editors.py.
"use strict";

const assert = require("assert");
const Module = require("module");

const calls = [];
const settings = { "server.command": ["/venv/bin/cnndsl", "lsp"], inlayHints: false };

class FakeClient {
  constructor(id, name, server, client) {
    calls.push({ id, name, server, client });
    this.running = false;
  }
  async start() { this.running = true; calls.push("start"); }
  async stop() { this.running = false; calls.push("stop"); }
}

const stubs = {
  vscode: {
    workspace: {
      getConfiguration: (section) => {
        assert.strictEqual(section, "cnndsl");
        return { get: (key, fallback) => (key in settings ? settings[key] : fallback) };
      },
      createFileSystemWatcher: (glob) => ({ glob }),
      onDidChangeConfiguration: () => ({ dispose() {} }),
    },
    commands: { registerCommand: (name) => ({ name, dispose() {} }) },
  },
  "vscode-languageclient/node": { LanguageClient: FakeClient, TransportKind: { stdio: 0 } },
};
const load = Module._load;
Module._load = function (request, ...rest) {
  return request in stubs ? stubs[request] : load.call(this, request, ...rest);
};

const extension = require("../extension.js");

(async () => {
  const context = { subscriptions: [] };
  await extension.activate(context);
  const made = calls[0];
  assert.deepStrictEqual(made.server, { command: "/venv/bin/cnndsl", args: ["lsp"], transport: 0 });
  assert.deepStrictEqual(made.client.documentSelector.map((s) => s.language), ["cnn", "cnn"]);
  assert.deepStrictEqual(made.client.initializationOptions, { inlayHints: false });
  assert.strictEqual(made.client.synchronize.fileEvents.glob, "**/*.cnn");
  assert.strictEqual(calls[1], "start");
  assert.deepStrictEqual(context.subscriptions.map((s) => s.name).filter(Boolean), ["cnndsl.restartServer"]);
  await extension.deactivate();
  assert.strictEqual(calls[2], "stop");
  // the language configuration: comments, brackets, and a header ending in `:` indents the next line
  const config = JSON.parse(require("fs").readFileSync(require("path").join(__dirname, "..", "language-configuration.json"), "utf8"));
  assert.strictEqual(config.comments.lineComment, "#");
  assert.deepStrictEqual(config.brackets, [["(", ")"], ["[", "]"]]);
  const indent = new RegExp(config.indentationRules.increaseIndentPattern);
  for (const line of ["network N(c=1):", "    add:", "    layer1:  # a group", "block B:"]) assert.ok(indent.test(line), line);
  for (const line of ["    conv 3 k3 | relu", "# add:", "    x = a | b"]) assert.ok(!indent.test(line), line);
  const word = new RegExp(config.wordPattern, "g");
  assert.deepStrictEqual("conv 3x224x224 k3 e1".match(word), ["conv", "3x224x224", "k3", "e1"]);
  console.log("extension.test.js: ok");
})().catch((e) => {
  console.error(e);
  process.exit(1);
});
