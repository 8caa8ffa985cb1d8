// The steps of a workflow as a diagram: placeholder until the diagram library is wired in.
export function WorkflowDiagram(_props: { source: string; name: string }) {
  return <p class="muted">(diagram not available)</p>;
}
