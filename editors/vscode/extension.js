// The cnndsl extension: starts `cnndsl lsp` (the command is the setting cnndsl.server.command) for .cnn files.
"use strict";

const vscode = require("vscode");
const { LanguageClient, TransportKind } = require("vscode-languageclient/node");

let client;

function serverOptions() {
  const command = vscode.workspace.getConfiguration("cnndsl").get("server.command", ["cnndsl", "lsp"]);
  return { command: command[0], args: command.slice(1), transport: TransportKind.stdio };
}

async function start(context) {
  client = new LanguageClient("cnndsl", "cnndsl", serverOptions(), {
    documentSelector: [{ scheme: "file", language: "cnn" }, { scheme: "untitled", language: "cnn" }],
    initializationOptions: { inlayHints: vscode.workspace.getConfiguration("cnndsl").get("inlayHints", true) },
    synchronize: {
      configurationSection: "cnndsl",
      fileEvents: vscode.workspace.createFileSystemWatcher("**/*.cnn"),
    },
  });
  await client.start();
}

async function activate(context) {
  context.subscriptions.push(
    vscode.workspace.onDidChangeConfiguration(async (event) => {
      if (event.affectsConfiguration("cnndsl.server.command") && client) {
        await client.stop();
        await start(context);
      }
    }),
    vscode.commands.registerCommand("cnndsl.restartServer", async () => {
      if (client) {
        await client.stop();
      }
      await start(context);
    }),
  );
  await start(context);
}

async function deactivate() {
  if (client) {
    await client.stop();
  }
}

module.exports = { activate, deactivate };
