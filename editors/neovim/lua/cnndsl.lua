-- cnndsl for Neovim 0.7 or later: the `cnn` filetype for *.cnn, its comments, and `cnndsl lsp` started for
-- every cnn buffer. With editors/neovim on the runtimepath, in init.lua:
--
--   vim.opt.runtimepath:append("/path/to/cnndsl/editors/neovim")
--   require("cnndsl").setup({ cmd = { "/path/to/.venv/bin/cnndsl", "lsp" } })
--
-- Options (all optional): cmd (default { "cnndsl", "lsp" }), inlay_hints (default true: the output shape at
-- the end of each layer line), root_markers (default { ".git" }: the server's root is the nearest directory
-- holding one, else the file's directory).
--
-- In cnn buffers: `#` comments, four spaces a level (expandtab), and a line after one that ends with `:`
-- indented one level more.
--
-- The shapes are the server's inlay hints. Neovim 0.10 and later show them itself (vim.lsp.inlay_hint);
-- older ones have no inlay hints, so this module asks for them (textDocument/inlayHint) each time the
-- server has checked the buffer (its diagnostics arrive) and shows them as virtual text at the end of the
-- line, highlighted as CnnInlayHint (linked to Comment). Below 0.10, K shows the hover in cnn buffers.

local M = {}

local api = vim.api
local ns = api.nvim_create_namespace("cnndsl_inlay_hints")
local config = { cmd = { "cnndsl", "lsp" }, inlay_hints = true, root_markers = { ".git" } }
local clients = {} -- root directory -> client id (Neovim 0.7, which has no vim.lsp.start)
local asked = {} -- buffer -> number of the last inlay hint request sent for it
local shown = {} -- buffer -> number of the request whose answer is shown
local native_hints = vim.lsp.inlay_hint ~= nil and vim.fn.has("nvim-0.10") == 1

local function root_dir(bufnr)
  local name = api.nvim_buf_get_name(bufnr)
  local dir = name ~= "" and vim.fn.fnamemodify(name, ":p:h") or vim.loop.cwd()
  local here = dir
  while true do
    for _, marker in ipairs(config.root_markers) do
      if vim.loop.fs_stat(here .. "/" .. marker) then
        return here
      end
    end
    local up = vim.fn.fnamemodify(here, ":h")
    if up == here then
      return dir
    end
    here = up
  end
end

local function label_text(label)
  if type(label) == "string" then
    return label
  end
  local parts = {}
  for _, part in ipairs(label) do
    parts[#parts + 1] = part.value
  end
  return table.concat(parts)
end

--- Ask `client` for the inlay hints of the whole buffer and show them at the ends of their lines.
function M.show_hints(bufnr, client)
  if not config.inlay_hints or not api.nvim_buf_is_loaded(bufnr) then
    return
  end
  local n = (asked[bufnr] or 0) + 1
  asked[bufnr] = n
  local params = {
    textDocument = vim.lsp.util.make_text_document_params(bufnr),
    range = { start = { line = 0, character = 0 }, ["end"] = { line = api.nvim_buf_line_count(bufnr), character = 0 } },
  }
  client.request("textDocument/inlayHint", params, function(err, result)
    -- answers come in order; one older than the answer shown (or an error) changes nothing
    if err or n < (shown[bufnr] or 0) or not api.nvim_buf_is_loaded(bufnr) then
      return
    end
    shown[bufnr] = n
    api.nvim_buf_clear_namespace(bufnr, ns, 0, -1)
    local lines, count = {}, api.nvim_buf_line_count(bufnr)
    for _, hint in ipairs(result or {}) do
      local line, text = hint.position.line, label_text(hint.label)
      lines[line] = lines[line] and (lines[line] .. "  " .. text) or text
    end
    for line, text in pairs(lines) do
      if line < count then
        api.nvim_buf_set_extmark(bufnr, ns, line, 0, { virt_text = { { text, "CnnInlayHint" } }, virt_text_pos = "eol", hl_mode = "combine" })
      end
    end
  end, bufnr)
end

local function code_of(line) -- the line without its comment (a # inside quotes is not one)
  local quoted = false
  for i = 1, #line do
    local c = line:sub(i, i)
    if c == '"' then
      quoted = not quoted
    elseif c == "#" and not quoted then
      return line:sub(1, i - 1)
    end
  end
  return line
end

--- The indent of line `lnum` (for 'indentexpr'): one level more after a line that ends with `:` (its
--- comment aside), else the indent of the line above.
function M.indent(lnum)
  local above = vim.fn.prevnonblank(lnum - 1)
  if above == 0 then
    return 0
  end
  if code_of(vim.fn.getline(above)):match(":%s*$") then
    return vim.fn.indent(above) + vim.fn.shiftwidth()
  end
  return vim.fn.indent(above)
end

local function filetype(bufnr)
  local bo = vim.bo[bufnr]
  bo.commentstring = "# %s"
  -- the layout `cnndsl fmt` writes: four spaces a level, one more after a line that ends with `:`
  bo.expandtab, bo.shiftwidth, bo.softtabstop = true, 4, 4
  bo.indentexpr = "v:lua.require'cnndsl'.indent(v:lnum)"
  bo.indentkeys = "o,O,!^F"
end

local function on_attach(client, bufnr)
  if vim.bo[bufnr].omnifunc == "" then
    vim.bo[bufnr].omnifunc = "v:lua.vim.lsp.omnifunc"
  end
  if vim.fn.has("nvim-0.10") == 0 then
    vim.keymap.set("n", "K", vim.lsp.buf.hover, { buffer = bufnr, desc = "cnndsl: hover" })
  end
  if not config.inlay_hints then
    return
  end
  if native_hints then
    vim.lsp.inlay_hint.enable(true, { bufnr = bufnr })
    return
  end
  -- each check of the buffer ends with its diagnostics: then its shapes are known too
  api.nvim_create_autocmd("DiagnosticChanged", {
    buffer = bufnr,
    callback = function()
      if not client.is_stopped() then
        M.show_hints(bufnr, client)
      end
    end,
  })
  api.nvim_create_autocmd("BufUnload", {
    buffer = bufnr,
    callback = function()
      asked[bufnr], shown[bufnr] = nil, nil
    end,
  })
  M.show_hints(bufnr, client)
end

--- Start (or reuse) the server for a cnn buffer and attach it.
function M.attach(bufnr)
  bufnr = (bufnr == nil or bufnr == 0) and api.nvim_get_current_buf() or bufnr
  if vim.bo[bufnr].buftype ~= "" then
    return
  end
  local root = root_dir(bufnr)
  local spec = {
    name = "cnndsl",
    cmd = config.cmd,
    root_dir = root,
    init_options = { inlayHints = config.inlay_hints },
    on_attach = on_attach,
  }
  if vim.lsp.start then -- Neovim 0.8 or later: it reuses the client of the same name and root
    vim.lsp.start(spec, { bufnr = bufnr })
    return
  end
  local id = clients[root]
  if id == nil or vim.lsp.client_is_stopped(id) then
    id = vim.lsp.start_client(spec)
    clients[root] = id
  end
  if id then
    vim.lsp.buf_attach_client(bufnr, id)
  end
end

function M.setup(opts)
  config = vim.tbl_deep_extend("force", config, opts or {})
  api.nvim_set_hl(0, "CnnInlayHint", { link = "Comment", default = true })
  local group = api.nvim_create_augroup("cnndsl", { clear = true })
  if vim.fn.has("nvim-0.8") == 1 then
    vim.filetype.add({ extension = { cnn = "cnn" } })
  else -- 0.7 detects filetypes in Vim script, where vim.filetype.add does nothing and a .cnn file that begins
    -- with a # comment becomes `conf`: set cnn whatever ran before
    api.nvim_create_autocmd({ "BufNewFile", "BufRead" }, { group = group, pattern = "*.cnn", command = "set filetype=cnn" })
  end
  api.nvim_create_autocmd("FileType", {
    group = group,
    pattern = "cnn",
    callback = function(args)
      filetype(args.buf)
      M.attach(args.buf)
    end,
  })
  -- buffers opened before setup ran
  for _, bufnr in ipairs(api.nvim_list_bufs()) do
    if api.nvim_buf_is_loaded(bufnr) and api.nvim_buf_get_name(bufnr):match("%.cnn$") then
      if vim.bo[bufnr].filetype == "cnn" then
        filetype(bufnr)
        M.attach(bufnr)
      else
        vim.bo[bufnr].filetype = "cnn" -- the FileType autocommand attaches it
      end
    end
  end
end

return M
