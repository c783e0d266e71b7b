// The interaction network with Cytoscape.js: voices sized by influence, an edge per kind
// and direction with its width by strength, antagonistic kinds dashed, and the pairs in
// conflict drawn thick in vermillion.
import { useEffect, useRef } from "react";
import cytoscape from "cytoscape";
import { ANTAGONISTIC, KIND_COLOUR, type Kind } from "./kinds";

export interface Link {
  source: string;
  target: string;
  kind: Kind;
  strength: number;
}

const MAX_EDGES = 400;

export function Network({
  voices,
  influence,
  links,
  conflicts,
  label,
}: {
  voices: string[];
  influence: Record<string, number>;
  links: Link[];
  conflicts: Set<string>;
  label: string;
}) {
  const box = useRef<HTMLDivElement>(null);
  useEffect(() => {
    if (!box.current) return;
    const strongest = [...links].sort((a, b) => b.strength - a.strength).slice(0, MAX_EDGES);
    const top = Math.max(1e-9, ...strongest.map((l) => l.strength));
    const graph = cytoscape({
      container: box.current,
      elements: [
        ...voices.map((v) => ({ data: { id: v, label: v, size: 18 + 42 * (influence[v] ?? 0) } })),
        ...strongest.map((l) => ({
          data: {
            id: `${l.source}>${l.target}:${l.kind}`,
            source: l.source,
            target: l.target,
            colour: KIND_COLOUR[l.kind],
            width: 1 + 7 * (l.strength / top),
          },
          classes: [
            ANTAGONISTIC.has(l.kind) ? "antagonistic" : "",
            conflicts.has(`${l.source}>${l.target}`) && ANTAGONISTIC.has(l.kind) ? "conflict" : "",
          ].join(" "),
        })),
      ],
      style: [
        {
          selector: "node",
          style: {
            label: "data(label)",
            width: "data(size)",
            height: "data(size)",
            "background-color": "#1b2a41",
            color: "#1b2a41",
            "font-size": 11,
            "text-valign": "bottom",
            "text-margin-y": 4,
          },
        },
        {
          selector: "edge",
          style: {
            width: "data(width)",
            "line-color": "data(colour)",
            "target-arrow-color": "data(colour)",
            "target-arrow-shape": "triangle",
            "curve-style": "bezier",
            opacity: 0.8,
          },
        },
        { selector: "edge.antagonistic", style: { "line-style": "dashed" } },
        {
          selector: "edge.conflict",
          style: { "line-color": "#d55e00", "target-arrow-color": "#d55e00", width: 9, opacity: 1 },
        },
      ],
      layout: { name: "circle", padding: 24 },
      userZoomingEnabled: false,
      boxSelectionEnabled: false,
    });
    const resize = () => {
      graph.resize();
      graph.fit(undefined, 24);
    };
    window.addEventListener("resize", resize);
    return () => {
      window.removeEventListener("resize", resize);
      graph.destroy();
    };
  }, [voices, influence, links, conflicts]);
  return <div ref={box} className="network" role="img" aria-label={label} data-testid="network" />;
}
