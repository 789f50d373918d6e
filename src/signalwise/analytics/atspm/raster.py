"""A small raster plotter for the ATSPM charts, on Pillow.

Written here rather than drawn with matplotlib: on 1.1 M events matplotlib's
import, figure building and rendering cost more CPU than every measure
together (about 1.3 s of 3.8 s), while these charts need only panels with
a time axis, markers, step lines, bars, one dotted threshold and text,
which Pillow draws in milliseconds. Each plot also keeps a record of what a
reader sees (titles, axis labels and limits, tick labels, each series'
label and colour, thresholds, legends, tinted spans and the labels over them),
which the tests read.
"""

from __future__ import annotations

import math
from functools import cache, lru_cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

DPI = 80
#: zlib level 1: charts are flat colours, the higher levels only cost time
PNG_OPTIONS = {"compress_level": 1}
INK = (34, 34, 34)
FRAME = (60, 60, 60)

# text sizes in pixels (at DPI 80: 9 px is about 8 pt)
TICK_PX, LABEL_PX, TITLE_PX, SUPTITLE_PX, LEGEND_PX = 9, 10, 10, 14, 10


@cache
def font(size_px: int) -> ImageFont.FreeTypeFont:
    """Pillow's own FreeType font (embedded in Pillow): no system font is needed."""
    return ImageFont.load_default(size=size_px)


def rgb(colour: str) -> tuple[int, int, int]:
    c = colour.lstrip("#")
    if len(c) == 1:  # "k"
        return (0, 0, 0)
    return int(c[0:2], 16), int(c[2:4], 16), int(c[4:6], 16)


def hex_of(colour: str) -> str:
    return "#{:02x}{:02x}{:02x}".format(*rgb(colour))


def lighter(colour: str, keep: float = 0.4) -> str:
    """The colour mixed with white (`keep` of it left): a bar for a period the log covers only in part."""
    return "#{:02x}{:02x}{:02x}".format(*(int(round(255 - (255 - c) * keep)) for c in rgb(colour)))


#: the hatching over a time bin the log covers only in part
PARTIAL_HATCH = "#9a9a9a"


@cache
def marker_offsets(marker: str, size_px: int) -> tuple[np.ndarray, np.ndarray]:
    """(dx, dy) pixel offsets of a filled marker: `.`/`o` disc, `^` triangle, `s` square, `x` cross."""
    r = (size_px - 1) / 2.0
    yy, xx = np.mgrid[0:size_px, 0:size_px] - r
    if marker == "s":
        mask = np.ones_like(xx, bool)
    elif marker == "x":
        mask = np.abs(np.abs(xx) - np.abs(yy)) < 0.75
    elif marker == "^":  # apex up: the width grows towards the bottom row
        mask = np.abs(xx) <= (yy + r) / 2.0 + 0.5
    else:
        mask = xx ** 2 + yy ** 2 <= (r + 0.25) ** 2  # 3 px: a plus; 4 px: a rounded square
    dy, dx = np.nonzero(mask)
    return (dx - int(r)).astype(np.int64), (dy - int(r)).astype(np.int64)


def nice_ticks(top: float, nbins: int = 4, integer: bool = False) -> np.ndarray:
    """Ticks from 0 to `top` at a step of 1, 2, 2.5 or 5 times a power of ten, at most `nbins` steps."""
    if top <= 0:
        return np.array([0.0])
    raw = top / nbins
    scale = 10 ** math.floor(math.log10(raw))
    steps = (1, 2, 5, 10) if integer else (1, 2, 2.5, 5, 10)
    step = next(s * scale for s in steps if s * scale >= raw * (1 - 1e-9))
    if integer:
        step = max(1.0, round(step))
    return np.arange(0.0, top + step * 1e-6, step)


def tick_label(v: float) -> str:
    return f"{int(round(v))}" if abs(v - round(v)) < 1e-9 else f"{v:g}"


def dashed(xs: np.ndarray, ys: np.ndarray, on_px: float, off_px: float) -> list[list[tuple[float, float]]]:
    """The drawn pieces of a polyline under a dash pattern."""
    pieces, current = [], []
    drawing, left = True, on_px
    for i in range(len(xs) - 1):
        x0, y0, x1, y1 = xs[i], ys[i], xs[i + 1], ys[i + 1]
        seg = math.hypot(x1 - x0, y1 - y0)
        done = 0.0
        while seg - done > 1e-9:
            step = min(left, seg - done)
            t0, t1 = done / seg, (done + step) / seg
            a = (x0 + (x1 - x0) * t0, y0 + (y1 - y0) * t0)
            b = (x0 + (x1 - x0) * t1, y0 + (y1 - y0) * t1)
            if drawing:
                if not current:
                    current.append(a)
                current.append(b)
            done += step
            left -= step
            if left <= 1e-9:
                if drawing and current:
                    pieces.append(current)
                    current = []
                drawing = not drawing
                left = on_px if drawing else off_px
    if current:
        pieces.append(current)
    return pieces


class Axes:
    """One panel: a box in pixels, data limits, and what it shows."""

    def __init__(self, plot: Plot, box: tuple[int, int, int, int], xlim: tuple[float, float],
                 ylim: tuple[float, float] = (0.0, 1.0)):
        self.plot, self.box = plot, box
        self.xlim, self.ylim = xlim, ylim
        self.record = {"title": "", "xlabel": "", "ylabel": "", "ylim": ylim, "xticks": [], "series": [],
                       "hlines": [], "legend": [], "zero_bars": 0,  # bars of height 0, drawn as a base mark
                       "bars": [],  # (label, left, width, height, partial) of each bar drawn
                       "shaded": [],  # (label, x0, x1) of each hatched span (a bin the log covers only in part)
                       "drawn": [],  # labels of the series that put at least one mark on the panel
                       "xtick_boxes": [],  # (label, (left, top, right, bottom) px) of each time label drawn
                       "bands": [],  # (label, x0, x1, colour) of each tinted span (a coordination plan's)
                       "vlines": [],  # (label, x) of each vertical divider
                       "span_labels": [],  # (text, x0, x1, (left, top, right, bottom) px) over the panel
                       "title_box": None}  # (left, top, right, bottom) px of the panel title as drawn
        self._xticks: tuple[np.ndarray, list[str]] | None = None
        self._integer = False
        #: the height of a row of span labels right above the panel (its title sits above that row)
        self.label_row_px = 0

    # -- set-up -------------------------------------------------------------------------------------
    def set_ylim(self, bottom: float, top: float, integer: bool = False) -> None:
        self.ylim = (float(bottom), float(top))
        self.record["ylim"] = self.ylim
        self._integer = integer

    def set_xticks(self, positions, labels: list[str], show_labels: bool = True) -> None:
        self._xticks = (np.asarray(positions, float), labels if show_labels else [])
        self.record["xticks"] = list(labels) if show_labels else []

    def set_title(self, text: str) -> None:
        self.record["title"] = text

    def set_xlabel(self, text: str) -> None:
        self.record["xlabel"] = text

    def set_ylabel(self, text: str) -> None:
        self.record["ylabel"] = text

    # -- data -> pixels ----------------------------------------------------------------------------
    def px(self, x, y) -> tuple[np.ndarray, np.ndarray]:
        x0, y0, x1, y1 = self.box
        (a, b), (c, d) = self.xlim, self.ylim
        px = x0 + (np.asarray(x, float) - a) * ((x1 - x0) / ((b - a) or 1.0))
        py = y1 - (np.asarray(y, float) - c) * ((y1 - y0) / ((d - c) or 1.0))
        return px, py

    def _clip(self, px: np.ndarray, py: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        x0, y0, x1, y1 = self.box
        return np.clip(px, x0, x1), np.clip(py, y0, y1)

    # -- series --------------------------------------------------------------------------------------
    def scatter(self, x, y, colour: str, label: str, marker: str = ".", size_px: int = 3) -> None:
        self.record["series"].append((label, hex_of(colour)))
        px, py = self.px(x, y)
        ok = np.isfinite(px) & np.isfinite(py)
        x0, y0, x1, y1 = self.box
        ok &= (px >= x0) & (px <= x1) & (py >= y0) & (py <= y1)
        if not ok.any():
            return
        self.record["drawn"].append(label)
        ix, iy = np.rint(px[ok]).astype(np.int64), np.rint(py[ok]).astype(np.int64)
        dx, dy = marker_offsets(marker, size_px)
        # every marker pixel at once: one C call for all points
        flat = np.stack([(ix[:, None] + dx).ravel(), (iy[:, None] + dy).ravel()], axis=1).ravel().tolist()
        self.plot.draw.point(flat, fill=rgb(colour))

    def steps(self, x, y, colour: str, label: str, width_px: int = 1, dash: bool = False) -> None:
        """A steps-post line: each value holds from its x to the next x."""
        self.record["series"].append((label, hex_of(colour)))
        x, y = np.asarray(x, float), np.asarray(y, float)
        ok = np.isfinite(x) & np.isfinite(y)
        x, y = x[ok], y[ok]
        if len(x) == 0:
            return
        self.record["drawn"].append(label)
        sx = np.repeat(x, 2)[1:]
        sy = np.repeat(y, 2)[:-1]
        self._polyline(sx, sy, colour, width_px, dash)

    def _polyline(self, x, y, colour: str, width_px: int, dash: bool) -> None:
        px, py = self._clip(*self.px(x, y))
        fill = rgb(colour)
        if dash:
            for piece in dashed(px, py, 5.0, 3.0):
                self.plot.draw.line(piece, fill=fill, width=width_px)
        elif len(px) == 1:
            self.plot.draw.point([(float(px[0]), float(py[0]))], fill=fill)
        else:
            self.plot.draw.line(np.stack([px, py], axis=1).ravel().tolist(), fill=fill, width=width_px)

    def bars(self, left, heights, width, colour: str, label: str, partial=None) -> None:
        """Bars from the base line; `width` one or per bar; `partial` (per bar): drawn lighter, outlined in the
        colour, for a period the log covers only in part."""
        self.record["series"].append((label, hex_of(colour)))
        left, heights = np.asarray(left, float), np.asarray(heights, float)
        widths = np.broadcast_to(np.asarray(width, float), left.shape)
        partial = np.zeros(len(left), bool) if partial is None else np.asarray(partial, bool)
        full, light = rgb(colour), rgb(lighter(colour))
        if partial.any():
            self.plot.used.add(lighter(colour))
        for x, h, width, part in zip(left, heights, widths, partial, strict=True):
            if not np.isfinite(h) or h < 0:
                continue  # no data: nothing drawn
            if label not in self.record["drawn"]:
                self.record["drawn"].append(label)
            self.record["bars"].append((label, float(x), float(width), float(h), bool(part)))
            fill = light if part else full
            if h == 0:  # a measured 0 is a mark on the base line, not the empty space of no data
                self.record["zero_bars"] += 1
                (xa, xb), (ya, _yb) = self.px([x, x + width], [0.0, 0.0])
                (xa, xb), (ya, _yb) = self._clip(np.array([xa, xb]), np.array([ya, ya]))
                self.plot.draw.rectangle([float(xa), float(ya) - 2, max(float(xa), float(xb) - 1), float(ya)],
                                         fill=full)
                continue
            (xa, xb), (ya, yb) = self.px([x, x + width], [0.0, h])
            (xa, xb), (ya, yb) = self._clip(np.array([xa, xb]), np.array([ya, yb]))
            self.plot.draw.rectangle([float(xa), float(yb), max(float(xa), float(xb) - 1), float(ya)], fill=fill,
                                     outline=full if part else None)

    def shade(self, x0: float, x1: float, label: str) -> None:
        """Hatch the span [x0, x1) of the x axis, over the panel's height (drawn before the series, under them)."""
        self.record["shaded"].append((label, float(x0), float(x1)))
        self.plot.used.add(PARTIAL_HATCH)
        (xa, xb), _ = self._clip(*self.px([x0, x1], [0.0, 0.0]))
        _, top, _, bottom = self.box
        if xb - xa < 1:
            return
        fill = rgb(PARTIAL_HATCH)
        # diagonal lines 6 px apart, each clipped to the span
        for c in np.arange(xa - (bottom - top), xb, 6.0):
            ax, ay, bx, by = c, float(bottom), c + (bottom - top), float(top)
            if ax < xa:
                ay -= xa - ax
                ax = xa
            if bx > xb:
                by += bx - xb
                bx = xb
            if bx > ax:
                self.plot.draw.line([(float(ax), ay), (float(bx), by)], fill=fill, width=1)

    def band(self, x0: float, x1: float, colour: str, label: str) -> None:
        """Tint the span [x0, x1) of the x axis over the panel's height (drawn before the series, under them)."""
        self.record["bands"].append((label, float(x0), float(x1), hex_of(colour)))
        self.plot.used.add(hex_of(colour))
        (xa, xb), _ = self._clip(*self.px([x0, x1], [0.0, 0.0]))
        _, top, _, bottom = self.box
        if xb - xa >= 1:
            self.plot.draw.rectangle([float(xa), top, float(xb) - 1, bottom], fill=rgb(colour))

    def vline(self, x: float, colour: str, label: str) -> None:
        """A dashed vertical line at `x` over the panel's height and its row of span labels."""
        self.record["vlines"].append((label, float(x)))
        self.plot.used.add(hex_of(colour))
        px, _ = self.px([x], [0.0])
        x0, top, x1, bottom = self.box
        if not x0 <= px[0] <= x1:
            return
        xs = np.array([px[0], px[0]], float)
        self.plot.draw.line([(float(px[0]), top - self.label_row_px), (float(px[0]), top)], fill=rgb(colour))
        for piece in dashed(xs, np.array([top, bottom], float), 4.0, 3.0):
            self.plot.draw.line(piece, fill=rgb(colour), width=1)

    def span_label(self, candidates: list[str], x0: float, x1: float) -> str | None:
        """Centred over the span [x0, x1), in the row above the panel (`label_row_px`): the first of `candidates`
        (longest first) that fits inside the span's width, so that labels of neighbouring spans never meet.
        Returns the text drawn, None when none fits."""
        (xa, xb), _ = self._clip(*self.px([x0, x1], [0.0, 0.0]))
        f = font(TICK_PX)
        text = next((c for c in candidates if c and f.getlength(c) + 6 <= xb - xa), None)
        if text is None or not self.label_row_px:
            return None
        at = ((xa + xb) / 2, self.box[1] - self.label_row_px / 2)
        self.plot.draw.text(at, text, fill=INK, font=f, anchor="mm")
        self.record["span_labels"].append((text, float(x0), float(x1), self.plot.draw.textbbox(at, text, font=f,
                                                                                                 anchor="mm")))
        return text

    def hline(self, y: float, colour: str, label: str, dotted: bool = True) -> None:
        self.record["hlines"].append((label, float(y)))
        self.record["series"].append((label, hex_of(colour)))
        self.record["drawn"].append(label)
        x0, _, x1, _ = self.box
        _, py = self.px([0.0], [y])
        if dotted:
            for piece in dashed(np.array([x0, x1], float), np.array([py[0], py[0]]), 1.5, 2.5):
                self.plot.draw.line(piece, fill=rgb(colour), width=1)
        else:
            self.plot.draw.line([(x0, float(py[0])), (x1, float(py[0]))], fill=rgb(colour), width=1)

    def legend_right(self, items: list[tuple[str, dict]]) -> None:
        """A legend beside the panel, at its top right: (label, style) per row (see Plot.swatch)."""
        self.record["legend"] = [label for label, _ in items]
        x = self.box[2] + 10
        y = self.box[1]
        for label, style in items:
            self.plot.swatch(x, y + LEGEND_PX // 2 + 1, style)
            self.plot.draw.text((x + 24, y), label, fill=INK, font=font(LEGEND_PX))
            y += LEGEND_PX + 6

    # -- frame, ticks, labels -------------------------------------------------------------------------
    def finish(self) -> None:
        """The frame, ticks, tick labels and titles (drawn last, over the data's edges)."""
        d, x0, y0, x1, y1 = self.plot.draw, *self.box
        d.rectangle([x0, y0, x1, y1], outline=FRAME, width=1)
        f = font(TICK_PX)
        for v in nice_ticks(self.ylim[1], integer=self._integer):
            if v > self.ylim[1] + 1e-9:
                continue
            _, py = self.px([0.0], [v])
            y = float(py[0])
            d.line([(x0 - 4, y), (x0, y)], fill=FRAME)
            d.text((x0 - 6, y), tick_label(v), fill=INK, font=f, anchor="rm")
        if self._xticks is not None:
            positions, labels = self._xticks
            px, _ = self.px(positions, np.zeros(len(positions)))
            for i, x in enumerate(px):
                if x < x0 - 0.5 or x > x1 + 0.5:
                    continue
                d.line([(x, y1), (x, y1 + 4)], fill=FRAME)
                if i < len(labels) and labels[i]:
                    d.text((x, y1 + 6), labels[i], fill=INK, font=f, anchor="mt")
                    self.record["xtick_boxes"].append((labels[i], d.textbbox((x, y1 + 6), labels[i], font=f,
                                                                             anchor="mt")))
        if self.record["title"]:
            at = ((x0 + x1) / 2, y0 - 4 - self.label_row_px)
            d.text(at, self.record["title"], fill=INK, font=font(TITLE_PX), anchor="md")
            self.record["title_box"] = d.textbbox(at, self.record["title"], font=font(TITLE_PX), anchor="md")
        if self.record["xlabel"]:
            d.text(((x0 + x1) / 2, y1 + 8 + TICK_PX + 4), self.record["xlabel"], fill=INK, font=font(LABEL_PX),
                   anchor="mt")
        if self.record["ylabel"]:
            self.plot.vertical_text(x0 - 46, (y0 + y1) / 2, self.record["ylabel"], LABEL_PX)


class Plot:
    """A figure of panels laid out in inches (at DPI), white, with a title and optional top legend."""

    def __init__(self, width_in: float, height_in: float):
        self.width, self.height = int(round(width_in * DPI)), int(round(height_in * DPI))
        self.image = Image.new("RGB", (self.width, self.height), "white")
        self.draw = ImageDraw.Draw(self.image)
        self.axes: list[Axes] = []
        self.record = {"suptitle": "", "legends": [], "notes": []}
        self.used: set[str] = set()  # colours drawn outside the series (legend keys): the palette keeps them

    def panel(self, box_in: tuple[float, float, float, float], xlim, ylim=(0.0, 1.0)) -> Axes:
        """A panel at (left, top, right, bottom) in inches from the top left corner."""
        box = tuple(int(round(v * DPI)) for v in box_in)
        ax = Axes(self, box, xlim, ylim)
        self.axes.append(ax)
        return ax

    def title(self, text: str, y_in: float = 0.12) -> None:
        self.record["suptitle"] = text
        self.draw.text((self.width / 2, y_in * DPI), text, fill=INK, font=font(SUPTITLE_PX), anchor="mt")

    def note(self, text: str, y_in: float) -> None:
        """A line of small text across the figure, centred (what a legend key alone would not say)."""
        self.record["notes"].append(text)
        self.draw.text((self.width / 2, y_in * DPI), text, fill=INK, font=font(LEGEND_PX), anchor="mt")

    def swatch(self, x: float, y: float, style: dict) -> None:
        """A legend's key at (x, y) (its left end, centred vertically): a marker, a line or a bar."""
        colour = rgb(style["colour"])
        self.used.add(hex_of(style["colour"]))
        if style.get("marker"):
            dx, dy = marker_offsets(style["marker"], style.get("size_px", 5))
            self.draw.point(list(zip((x + 8 + dx).tolist(), (y + dy).tolist(), strict=True)), fill=colour)
        elif style.get("hatch"):
            for dx in (2, 7, 12):
                self.draw.line([(x + dx, y + 4), (x + dx + 6, y - 4)], fill=colour, width=1)
        elif style.get("bar"):
            light = rgb(lighter(style["colour"])) if style.get("light") else colour
            if style.get("light"):
                self.used.add(lighter(style["colour"]))
            self.draw.rectangle([x + 2, y - 4, x + 16, y + 4], fill=light, outline=colour if style.get("light")
                                else None)
        else:
            xs, ys = np.array([x, x + 18], float), np.array([y, y], float)
            if style.get("dash") or style.get("dot"):
                on_off = (1.5, 2.5) if style.get("dot") else (5.0, 3.0)
                for piece in dashed(xs, ys, *on_off):
                    self.draw.line(piece, fill=colour, width=style.get("width_px", 1))
            else:
                self.draw.line([(x, y), (x + 18, y)], fill=colour, width=style.get("width_px", 1))

    def legend_top(self, items: list[tuple[str, dict]], y_in: float) -> None:
        """One legend row, centred, for the series every panel shares."""
        self.record["legends"] = [label for label, _ in items]
        f = font(LEGEND_PX)
        widths = [24 + f.getlength(label) + 18 for label, _ in items]
        x = (self.width - sum(widths)) / 2
        y = y_in * DPI
        for (label, style), w in zip(items, widths, strict=True):
            self.swatch(x, y, style)
            self.draw.text((x + 24, y), label, fill=INK, font=f, anchor="lm")
            x += w

    def vertical_text(self, x: float, y_mid: float, text: str, size_px: int) -> None:
        """Text read bottom to top, centred on y_mid, its left edge at x."""
        f = font(size_px)
        w = int(math.ceil(f.getlength(text))) + 2
        h = size_px + 4
        tile = Image.new("L", (w, h), 0)
        ImageDraw.Draw(tile).text((1, h / 2), text, fill=255, font=f, anchor="lm")
        tile = tile.rotate(90, expand=True)
        ink = Image.new("RGB", tile.size, INK)
        self.image.paste(ink, (int(x), int(y_mid - tile.size[1] / 2)), tile)

    def save(self, path: Path) -> Path:
        """A palette PNG (half the size of RGB, and faster to write). The palette holds every colour drawn
        exactly, and greys for the text's anti-aliased edges, so every series keeps its own colour."""
        for ax in self.axes:
            ax.finish()
        colours = self.used | {c for ax in self.axes for _label, c in ax.record["series"]}
        self.image.quantize(palette=_palette(tuple(sorted(colours))), dither=Image.Dither.NONE).save(
            path, format="png", dpi=(DPI, DPI), **PNG_OPTIONS)
        return path


@lru_cache(maxsize=32)
def _palette(colours: tuple[str, ...]) -> Image.Image:
    greys = [(v, v, v) for v in np.linspace(INK[0], 255, 48).round().astype(int).tolist()]
    entries = list(dict.fromkeys([(255, 255, 255), INK, FRAME, *map(rgb, colours), *greys]))[:256]
    image = Image.new("P", (1, 1))
    flat = [c for e in entries for c in e]
    image.putpalette(flat + flat[:3] * (256 - len(entries)))
    return image
