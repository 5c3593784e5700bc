#!/usr/bin/env python3
"""Per-organ markdown table of two `lumen eval --clicks N --json` reports on the same prompts:
box Dice and 1-click Dice of a model against a reference, in points, and the set's mean.

    python3 packaging/model/litemedsam/compare.py REFERENCE.json MODEL.json [--box-goal 1.0 --click-goal 1.5]

The last line says whether the means lie within the goals (points of Dice below the reference).
Standard library only.
"""
import argparse
import json


def organs(report):
    return {o["name"]: o for o in report["organs"]}


def one_click(entry):
    clicks = entry.get("dice_clicks") or []
    return clicks[0] if clicks else None


def cell(value):
    return "" if value is None else f"{value:.4f}"


def delta(model, reference):
    return "" if model is None or reference is None else f"{100 * (model - reference):+.2f}"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("reference", type=argparse.FileType())
    parser.add_argument("model", type=argparse.FileType())
    parser.add_argument("--box-goal", type=float, default=1.0)
    parser.add_argument("--click-goal", type=float, default=1.5)
    args = parser.parse_args()
    ref, new = json.load(args.reference), json.load(args.model)
    if ref["data"] != new["data"] or ref["options"] != new["options"]:
        raise SystemExit("the two reports are not of the same slices and prompts")
    names = (ref["model"], new["model"])
    print(f"| organ | n | box {names[0]} | box {names[1]} | Δ | 1 click {names[0]} | 1 click {names[1]} | Δ |")
    print("|---|---|---|---|---|---|---|---|")
    ref_organs, new_organs = organs(ref), organs(new)
    rows = [(name, ref_organs[name], new_organs.get(name)) for name in ref_organs]
    rows.append(("**mean**", ref["overall"], new["overall"]))
    for name, r, n in rows:
        if n is None:
            raise SystemExit(f"{name} is missing from {args.model.name}")
        print(f"| {name} | {r.get('n', '')} | {cell(r['dice'])} | {cell(n['dice'])} | {delta(n['dice'], r['dice'])} "
              f"| {cell(one_click(r))} | {cell(one_click(n))} | {delta(one_click(n), one_click(r))} |")
    box = 100 * (new["overall"]["dice"] - ref["overall"]["dice"])
    click_r, click_n = one_click(ref["overall"]), one_click(new["overall"])
    click = None if click_r is None or click_n is None else 100 * (click_n - click_r)
    verdict = [f"box {box:+.2f} points (goal ≥ −{args.box_goal}): {'met' if box >= -args.box_goal else 'not met'}"]
    if click is not None:
        verdict.append(f"1 click {click:+.2f} (goal ≥ −{args.click_goal}): {'met' if click >= -args.click_goal else 'not met'}")
    print("\n" + "; ".join(verdict))


if __name__ == "__main__":
    main()
