// The steps of a workflow as a diagram: the definition (parsed from the stored source with `yaml`)
// becomes a Mermaid flowchart (diagram-source.ts), which Mermaid lays out and draws. Mermaid is
// large, so it is a chunk of its own, loaded only when a diagram is shown.
import { useEffect, useRef, useState } from "preact/hooks";
import { parseAllDocuments } from "yaml";
import { workflowDiagram, type WorkflowLike } from "./diagram-source.ts";

let diagrams = 0;

export function WorkflowDiagram({ source, name }: { source: string; name: string }) {
  const box = useRef<HTMLDivElement>(null);
  const [error, setError] = useState("");
  useEffect(() => {
    let stale = false;
    void (async () => {
      try {
        const definition = parseAllDocuments(source)
          .map((document) => document.toJS() as WorkflowLike)
          .find((candidate) => candidate?.name === name);
        if (!definition) throw new Error(`the source holds no workflow named ${name}`);
        const { default: mermaid } = await import("mermaid");
        mermaid.initialize({ startOnLoad: false, securityLevel: "strict", flowchart: { htmlLabels: false } });
        const { svg } = await mermaid.render(`diagram-${++diagrams}`, workflowDiagram(definition));
        if (!stale && box.current) box.current.innerHTML = svg;
      } catch (failure) {
        if (!stale) setError((failure as Error).message);
      }
    })();
    return () => {
      stale = true;
    };
  }, [source, name]);
  return (
    <>
      {error && <p class="error">Could not draw the diagram: {error}</p>}
      <div class="diagram" ref={box} data-testid="diagram" />
    </>
  );
}
