/** Workflow definitions: submit (YAML or JSON), validate, list, read, delete. */
import type { FastifyPluginCallback, FastifyRequest } from "fastify";
import type { StoredWorkflow } from "../../nats/workflow-store.ts";
import { routeConflicts } from "../../triggers/http-routes.ts";
import { nextFireTimes } from "../../triggers/schedule.ts";
import { validateWorkflowText } from "../../workflow/validate.ts";
import { useWorkflowTextBodies, yamlContentTypes } from "../body-parsers.ts";
import type { ApiContext } from "../context.ts";
import { ApiError } from "../problems.ts";
import { problemResponses, schemaRefs, workflowNameSchema } from "../schemas.ts";

const tags = ["workflows"];
const consumes = [...yamlContentTypes.slice(0, 2), "application/json"];
const nameParams = { type: "object", required: ["name"], properties: { name: workflowNameSchema } } as const;
const documentBody = {
  type: "string",
  description:
    "The workflow document, as YAML (`application/yaml`, `text/yaml`) or JSON (`application/json`).",
} as const;

interface NameParams {
  Params: { name: string };
}

export function workflowRoutes({ executions, limits, triggers }: ApiContext): FastifyPluginCallback {
  /**
   * 409 when the document's http routes are served by another workflow. Checked against the
   * registry brought up to date, so a submission right after another one sees it; two replicas
   * accepting the same route at the same instant are settled by `routeTable` (name order).
   */
  const refuseRouteConflicts = async (text: string): Promise<void> => {
    const { workflows } = validateWorkflowText(text);
    if (!workflows.some((definition) => definition.triggers?.some((trigger) => "http" in trigger))) return;
    await triggers.registry.upToDate();
    for (const definition of workflows) {
      const [conflict, ...more] = routeConflicts(definition, triggers.registry.workflows());
      if (conflict)
        throw new ApiError(
          "RouteConflict",
          `workflow "${definition.name}" claims ${conflict.key}, which workflow "${conflict.holder}" serves${more.length > 0 ? ` (and ${more.length} more route${more.length === 1 ? "" : "s"} held by others)` : ""}: change the path or method, or remove the trigger from "${conflict.holder}" first`,
          [conflict, ...more].map(({ key, holder }) => ({
            code: "RouteConflict",
            message: `${key} is served by workflow "${holder}"`,
            path: "triggers",
          })),
        );
    }
  };

  /** The document as sent, once it is known to be within the limit. */
  const documentOf = (request: FastifyRequest): string => {
    if (request.bodyBytes > limits.workflowLimit)
      throw new ApiError(
        "WorkflowTooLarge",
        `the workflow document is ${request.bodyBytes} bytes; this server takes at most ${limits.workflowLimit} (BATON_API_WORKFLOW_LIMIT)`,
      );
    const text = request.body;
    if (typeof text !== "string" || text.trim() === "")
      throw new ApiError(
        "RequestInvalid",
        "send the workflow document as the body, with Content-Type: application/yaml or application/json",
        [{ code: "RequestInvalid", message: "the body is empty", path: "body" }],
      );
    return text;
  };

  return (app, _options, done) => {
    useWorkflowTextBodies(app);

    app.put<NameParams & { Body: string }>(
      "/v1/workflows/:name",
      {
        schema: {
          tags,
          summary:
            "Submit a workflow: create it, or update it to a new revision (an identical document keeps its revision)",
          consumes,
          params: nameParams,
          body: documentBody,
          response: {
            200: { ...schemaRefs.workflowSubmitted, description: "Updated, or unchanged." },
            201: { ...schemaRefs.workflowSubmitted, description: "Created." },
            ...problemResponses(400, 409, 413, 415),
          },
        },
      },
      async (request, reply) => {
        const text = documentOf(request);
        await refuseRouteConflicts(text);
        const { workflow, outcome } = await executions.submit(request.params.name, text);
        return reply.code(outcome === "created" ? 201 : 200).send({
          name: workflow.name,
          revision: workflow.revision,
          triggers: workflow.definition.triggers ?? [],
        });
      },
    );

    // `::` is fastify's escape for a literal colon.
    app.post<{ Body: string }>(
      "/v1/workflows::validate",
      {
        schema: {
          tags,
          summary: "Validate a workflow document (one or several workflows); store nothing",
          consumes,
          body: documentBody,
          response: {
            200: {
              type: "object",
              required: ["valid"],
              properties: { valid: { type: "boolean", enum: [true] } },
            },
            ...problemResponses(400, 413, 415),
          },
        },
      },
      (request) => {
        const problems = executions.validate(documentOf(request));
        if (problems.length > 0)
          throw new ApiError(
            "WorkflowInvalid",
            `the workflow has ${problems.length} problem${problems.length === 1 ? "" : "s"}; errors[] lists each with its line and column`,
            problems,
          );
        return { valid: true };
      },
    );

    app.get(
      "/v1/workflows",
      {
        schema: {
          tags,
          summary: "List workflows (latest revisions), by name",
          response: {
            200: {
              type: "object",
              required: ["items"],
              properties: { items: { type: "array", items: schemaRefs.workflowSummary } },
            },
            ...problemResponses(),
          },
        },
      },
      async () => ({
        items: (await executions.listWorkflows()).map((workflow) => ({
          name: workflow.name,
          revision: workflow.revision,
          ...(workflow.definition.description === undefined
            ? {}
            : { description: workflow.definition.description }),
          updatedAt: workflow.updatedAt,
        })),
      }),
    );

    app.get<NameParams & { Querystring: { revision?: number } }>(
      "/v1/workflows/:name",
      {
        schema: {
          tags,
          summary: "One workflow with its source, the latest revision or `?revision=N`",
          params: nameParams,
          querystring: {
            type: "object",
            properties: { revision: { type: "integer", minimum: 1, maximum: 1_000_000_000 } },
          },
          response: { 200: schemaRefs.workflow, ...problemResponses(400, 404) },
        },
      },
      async (request) => {
        const { name } = request.params;
        const { revision } = request.query;
        const workflow = await executions.workflows.get(name, revision);
        if (!workflow)
          throw new ApiError(
            "WorkflowNotFound",
            revision === undefined
              ? `no workflow named "${name}" has been submitted`
              : `workflow "${name}" has no revision ${revision}`,
          );
        return viewWorkflow(workflow);
      },
    );

    app.delete<NameParams>(
      "/v1/workflows/:name",
      {
        schema: {
          tags,
          summary: "Remove a workflow (its running executions finish on their revision)",
          params: nameParams,
          response: { 204: { type: "null", description: "Removed." }, ...problemResponses(400, 404) },
        },
      },
      async (request, reply) => {
        const { name } = request.params;
        if (!(await executions.removeWorkflow(name)))
          throw new ApiError("WorkflowNotFound", `no workflow named "${name}" has been submitted`);
        return reply.code(204).send();
      },
    );
    done();
  };
}

function viewWorkflow(workflow: StoredWorkflow) {
  return {
    name: workflow.name,
    revision: workflow.revision,
    ...(workflow.definition.description === undefined
      ? {}
      : { description: workflow.definition.description }),
    updatedAt: workflow.updatedAt,
    source: workflow.source,
    triggers: workflow.definition.triggers ?? [],
    ...(workflow.definition.triggers?.some((trigger) => "schedule" in trigger)
      ? { nextFires: nextFireTimes(workflow.definition, 5) }
      : {}),
  };
}
