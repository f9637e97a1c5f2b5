"""The README's screenshots (docs/neovim-*.png): the real Neovim, in a pseudo-terminal, with editors/neovim's
set-up and the real server, editing examples/resnet18.cnn.

Neovim runs as a user runs it (`nvim -u <config> examples/resnet18.cnn`) in a pseudo-terminal of COLUMNS x
ROWS, and the keys of each frame are typed into the terminal; once the frame's text is on the screen, the
screen is taken: the file as opened, with the output shapes at the ends of the lines (the server's inlay
hints); K on the downsample's conv inside the block (the hover); ` | flatten` typed at the end of the stem's
line (the diagnostic). The terminal's screen, with its colours and the cursor, is kept by the pyte terminal
emulator and drawn cell by cell with Pillow in DejaVu Sans Mono. Each PNG records the screen's text, Neovim's
version and the keys typed (tests/test_neovim.py checks that text against what the server answers today).

pyte is a tool of this script, not a dependency of cnndsl:

    pip install pyte
    python editors/neovim/screenshot.py     # writes docs/neovim-*.png
"""

from __future__ import annotations

import os
import pty
import select
import shutil
import struct
import subprocess
import sys
import tempfile
import termios
import fcntl
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
EXAMPLE = ROOT / "examples" / "resnet18.cnn"
COLUMNS, ROWS = 134, 18  # the example's 16 lines, the status line and the command line
FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSansMono{}.ttf"
COLORSCHEME = "desert"  # one of Neovim's own
FRAMES = [  # (picture, [(the keys typed, the text on the screen once Neovim has shown what they asked for)])
    (ROOT / "docs" / "neovim-hints.png", [("", "(N, 512, 7, 7)")]),  # layer4's shape: the hints have arrived
    (ROOT / "docs" / "neovim-hover.png", [("5G10|K", "layer4.0.downsample.0")]),
    (ROOT / "docs" / "neovim-error.png", [("10GA | flatten\x1b", "needs a 3-D"),
                                          ("4G^:lua vim.diagnostic.open_float()\r", "hint: a flat tensor")]),
]

CONFIG = """\
vim.opt.runtimepath:append({rtp})
require("cnndsl").setup({{ cmd = {{ {python}, "-m", "cnndsl", "lsp" }} }})
vim.opt.number = true
vim.opt.termguicolors = true
vim.opt.laststatus = 2
vim.opt.showmode = true
vim.cmd("colorscheme {colorscheme}")
vim.api.nvim_set_hl(0, "NormalFloat", {{ bg = "#404040" }})  -- the hover's window (Neovim 0.7's is magenta)
"""

# xterm's colours, for cells that name one instead of giving #rrggbb
NAMED = {
    "black": "000000", "red": "cd0000", "green": "00cd00", "brown": "cdcd00", "blue": "0000ee", "magenta": "cd00cd",
    "cyan": "00cdcd", "white": "e5e5e5", "brightblack": "7f7f7f", "brightred": "ff0000", "brightgreen": "00ff00",
    "brightbrown": "ffff00", "brightblue": "5c5cff", "brightmagenta": "ff00ff", "brightcyan": "00ffff",
    "brightwhite": "ffffff",
}
DEFAULT_FG, DEFAULT_BG = "d0d0d0", "1c1c1c"


def lua_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


class Terminal:
    """Neovim in a pseudo-terminal, its output fed to a pyte screen."""

    def __init__(self, argv: list[str], env: dict, cwd: str):
        import pyte

        self.screen = pyte.Screen(COLUMNS, ROWS)
        self.screen.write_process_input = self.answer  # the terminal's replies to Neovim's queries
        self.stream = pyte.ByteStream(self.screen)
        self.master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", ROWS, COLUMNS, 0, 0))
        self.proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, env=env, cwd=cwd,
                                     start_new_session=True)
        os.close(slave)

    def answer(self, data: str) -> None:
        os.write(self.master, data.encode())

    def pump(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while (left := end - time.monotonic()) > 0:
            ready, _, _ = select.select([self.master], [], [], left)
            if ready:
                try:
                    data = os.read(self.master, 65536)
                except OSError:
                    return
                self.stream.feed(data)

    def text(self) -> str:
        return "\n".join(self.screen.display)

    def wait_for(self, text: str, timeout: float) -> None:
        end = time.monotonic() + timeout
        while text not in self.text():
            if time.monotonic() > end:
                raise TimeoutError(f"{text!r} did not appear on the screen:\n{self.text()}")
            self.pump(0.05)
        self.pump(0.5)  # and whatever is drawn with it

    def type(self, keys: str) -> None:
        os.write(self.master, keys.encode())

    def close(self) -> None:
        self.type("\x1b:qa!\r")
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        os.close(self.master)


def version(nvim: str) -> str:
    return subprocess.run([nvim, "--version"], capture_output=True, text=True, timeout=30).stdout.split("\n")[0]


def capture() -> tuple[list, str]:
    """Run Neovim, type each frame's keys, and return a copy of each frame's screen and Neovim's version."""
    nvim = shutil.which("nvim")
    if nvim is None:
        raise SystemExit("nvim is not installed (apt-get install neovim)")
    with tempfile.TemporaryDirectory() as home:
        config = Path(home) / "init.lua"
        config.write_text(CONFIG.format(rtp=lua_string(str(HERE)), python=lua_string(sys.executable), colorscheme=COLORSCHEME))
        env = {"PATH": os.environ["PATH"], "HOME": home, "TERM": "xterm-256color", "COLORTERM": "truecolor",
               "LANG": "C.UTF-8", "PYTHONPATH": str(ROOT)}
        term = Terminal([nvim, "-n", "-i", "NONE", "-u", str(config), str(EXAMPLE.relative_to(ROOT))], env, str(ROOT))
        try:
            screens = []
            for _, steps in FRAMES:
                for keys, expected in steps:
                    term.type(keys)
                    term.wait_for(expected, 30)
                screens.append(Frame(term.screen))
            return screens, version(nvim)
        finally:
            term.close()


def colour(value: str, default: str) -> str:
    if value == "default":
        return "#" + default
    return "#" + NAMED.get(value, value)


class Frame:
    """What a screen showed: its cells, its text and its cursor."""

    def __init__(self, screen):
        self.buffer = [[screen.buffer[y][x] for x in range(COLUMNS)] for y in range(ROWS)]
        self.display = list(screen.display)
        self.cursor = None if screen.cursor.hidden else (screen.cursor.x, screen.cursor.y)


def draw(screen: Frame, keys: str, about: str):
    from PIL import Image, ImageDraw, ImageFont
    from PIL.PngImagePlugin import PngInfo

    size = 16
    fonts = {(False, False): ImageFont.truetype(FONT.format(""), size),
             (True, False): ImageFont.truetype(FONT.format("-Bold"), size),
             (False, True): ImageFont.truetype(FONT.format("-Oblique"), size),
             (True, True): ImageFont.truetype(FONT.format("-BoldOblique"), size)}
    cw = round(fonts[False, False].getlength("M"))
    lh = round(size * 1.25)
    pad = 8
    image = Image.new("RGB", (COLUMNS * cw + 2 * pad, ROWS * lh + 2 * pad), "#" + DEFAULT_BG)
    d = ImageDraw.Draw(image)
    for y in range(ROWS):
        line = screen.buffer[y]
        for x in range(COLUMNS):
            ch = line[x]
            fg, bg = colour(ch.fg, DEFAULT_FG), colour(ch.bg, DEFAULT_BG)
            if ch.reverse != ((x, y) == screen.cursor):
                fg, bg = bg, fg
            left, top = pad + x * cw, pad + y * lh
            if bg != "#" + DEFAULT_BG:
                d.rectangle((left, top, left + cw - 1, top + lh - 1), fill=bg)
            if ch.data.strip():
                d.text((left, top + 1), ch.data, font=fonts[bool(ch.bold), bool(ch.italics)], fill=fg)
            if ch.underscore:
                d.line((left, top + lh - 2, left + cw - 1, top + lh - 2), fill=fg)
    info = PngInfo()
    info.add_text("Software", f"editors/neovim/screenshot.py ({about})")
    info.add_text("keys", keys)
    info.add_text("screen", "\n".join(screen.display))
    return image, info


def main() -> int:
    screens, about = capture()
    typed = ""
    for (picture, steps), screen in zip(FRAMES, screens):
        typed += "".join(keys for keys, _ in steps)
        image, info = draw(screen, typed, about)
        image.save(picture, pnginfo=info)
        print(f"wrote {picture.relative_to(ROOT)} ({image.width}x{image.height}, {about})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
