// Interaction kinds: a colour each (Okabe–Ito, safe with every common colour-vision
// deficiency) and a line style, so a kind never rests on colour alone.
export const KINDS = ["COOPERATION", "COMPLEMENTATION", "AMPLIFICATION", "COMPETITION", "SUPPRESSION"] as const;
export type Kind = (typeof KINDS)[number];

export const KIND_COLOUR: Record<Kind, string> = {
  COOPERATION: "#0072b2",
  COMPLEMENTATION: "#009e73",
  AMPLIFICATION: "#56b4e9",
  COMPETITION: "#e69f00",
  SUPPRESSION: "#d55e00",
};

export const ANTAGONISTIC = new Set<string>(["COMPETITION", "SUPPRESSION"]);

export const kindLabel = (kind: string) => kind[0] + kind.slice(1).toLowerCase();
