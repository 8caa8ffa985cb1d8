/**
 * xstate's pure `transition` and `initialTransition` (a snapshot and an event in, the next snapshot
 * and the actions it asks for out, nothing executed), without their cost per call. Each of xstate's
 * builds an "inert" actor scope by constructing a whole actor for `self`, and an actor's
 * constructor computes the machine's initial snapshot: the context factory and the initial
 * transition, thrown away. In the engine's profile of a 1,000-item map (every item an execution
 * of its own) that was about 16% of its CPU, twice per item.
 *
 * Here the actor behind `self` is made once per machine and only stands there: the machine's own
 * `transition` and `getInitialSnapshot` (its ActorLogic interface) get a scope per call that
 * collects the actions instead of executing them, as xstate's inert scope does. Baton's machines
 * invoke and spawn no actors (children are executions of their own), so nothing registers in the
 * shared actor's system. test/unit/pure-transition.test.ts holds these to xstate's own functions.
 */
import {
  createActor,
  type ActionExecutor,
  type AnyActorRef,
  type AnyActorScope,
  type AnyMachineSnapshot,
  type AnyStateMachine,
  type EventFromLogic,
  type ExecutableActionsFrom,
  type InputFrom,
} from "xstate";

const standIns = new WeakMap<AnyStateMachine, AnyActorRef>();

function scopeFor(machine: AnyStateMachine, actions: Parameters<ActionExecutor>[0][]): AnyActorScope {
  let self = standIns.get(machine);
  if (self === undefined) {
    self = createActor(machine);
    standIns.set(machine, self);
  }
  return {
    self,
    id: "",
    sessionId: "",
    logger: () => {},
    defer: () => {},
    emit: () => {},
    system: self.system,
    stopChild: () => {},
    actionExecutor: (action) => void actions.push(action),
  };
}

/** `transition(machine, snapshot, event)` of xstate. */
export function pureTransition<T extends AnyStateMachine>(
  machine: T,
  snapshot: AnyMachineSnapshot,
  event: EventFromLogic<T>,
): [AnyMachineSnapshot, ExecutableActionsFrom<T>[]] {
  const actions: Parameters<ActionExecutor>[0][] = [];
  const next = machine.transition(
    snapshot as never,
    event,
    scopeFor(machine, actions) as never,
  ) as AnyMachineSnapshot;
  return [next, actions as ExecutableActionsFrom<T>[]];
}

/** `initialTransition(machine, input)` of xstate. */
export function pureInitialTransition<T extends AnyStateMachine>(
  machine: T,
  input: InputFrom<T>,
): [AnyMachineSnapshot, ExecutableActionsFrom<T>[]] {
  const actions: Parameters<ActionExecutor>[0][] = [];
  const first = machine.getInitialSnapshot(scopeFor(machine, actions) as never, input) as AnyMachineSnapshot;
  return [first, actions as ExecutableActionsFrom<T>[]];
}
