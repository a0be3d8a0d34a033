/**
 * Mutation operators over compiled JavaScript (dist/src/**.js), found on the TypeScript parser's
 * AST of the JS text. Each site is one or two text edits; "building" a mutant is writing the edited
 * file. The set follows kernel-style concurrency mistakes as well as the standard operators:
 *
 * - cond-flip      `===`<->`!==`, `==`<->`!=`, `<`<->`<=`, `>`<->`>=`
 * - logic-swap     `&&`<->`||`
 * - drop-wake      drop a call statement that notifies, kicks, wakes or makes a request
 * - drop-lock      remove a lock acquire/release pair (`lockX(a)` ... `unlockX(a)` in one block)
 * - early-release  move a release one statement earlier, out of the critical section's tail
 * - drop-store     drop a statement that stores to (shared) memory: `m[i] = v`, `m[i] |= v`,
 *                  `m[i]++`, `Atomics.store/add/sub/or/and/xor/exchange/compareExchange(...)`
 * - return-value   `return true`<->`return false`, a numeric literal returned changed, a boolean-
 *                  shaped returned expression negated
 * - drop-recheck   delete a retry loop's re-check: an `if` whose branch ends in `continue`, or a
 *                  do-while's loop condition (replaced by `false`)
 * - off-by-one     `a + 1` / `a - 1` -> `a`
 *
 * Not mutated, because no stress test could observe the change or because the change is not the
 * model's: an `Atomics.load` made a plain read (the same value in JS), schedule points, history
 * and trace recording, and code that only a planted bug seed runs (`h.bugs & BUG.x` branches).
 */
import ts from 'typescript';

export type OperatorName =
  | 'cond-flip' | 'logic-swap' | 'drop-wake' | 'drop-lock' | 'early-release' | 'drop-store' | 'return-value'
  | 'drop-recheck' | 'off-by-one';

export const OPERATORS: readonly OperatorName[] = [
  'cond-flip', 'logic-swap', 'drop-wake', 'drop-lock', 'early-release', 'drop-store', 'return-value', 'drop-recheck',
  'off-by-one',
];

/** Replace [start, end) of the original text with `text`. */
export interface Edit {
  start: number;
  end: number;
  text: string;
}

export interface MutationSite {
  operator: OperatorName;
  /** What changed, e.g. `'&&' -> '||'` or `drop unlockIrq(h, r)`. */
  description: string;
  /** Non-overlapping edits, in ascending order of start. */
  edits: Edit[];
  /** Offset in the JS text that names the site (mapped to the .ts line through the source map). */
  at: number;
}

const FLIP: Readonly<Partial<Record<ts.SyntaxKind, ts.SyntaxKind>>> = {
  [ts.SyntaxKind.EqualsEqualsEqualsToken]: ts.SyntaxKind.ExclamationEqualsEqualsToken,
  [ts.SyntaxKind.ExclamationEqualsEqualsToken]: ts.SyntaxKind.EqualsEqualsEqualsToken,
  [ts.SyntaxKind.EqualsEqualsToken]: ts.SyntaxKind.ExclamationEqualsToken,
  [ts.SyntaxKind.ExclamationEqualsToken]: ts.SyntaxKind.EqualsEqualsToken,
  [ts.SyntaxKind.LessThanToken]: ts.SyntaxKind.LessThanEqualsToken,
  [ts.SyntaxKind.LessThanEqualsToken]: ts.SyntaxKind.LessThanToken,
  [ts.SyntaxKind.GreaterThanToken]: ts.SyntaxKind.GreaterThanEqualsToken,
  [ts.SyntaxKind.GreaterThanEqualsToken]: ts.SyntaxKind.GreaterThanToken,
};
const SWAP: Readonly<Partial<Record<ts.SyntaxKind, ts.SyntaxKind>>> = {
  [ts.SyntaxKind.AmpersandAmpersandToken]: ts.SyntaxKind.BarBarToken,
  [ts.SyntaxKind.BarBarToken]: ts.SyntaxKind.AmpersandAmpersandToken,
};
const ATOMIC_STORES = new Set(['store', 'add', 'sub', 'or', 'and', 'xor', 'exchange', 'compareExchange']);
const COMPOUND_ASSIGN = new Set([
  ts.SyntaxKind.EqualsToken, ts.SyntaxKind.PlusEqualsToken, ts.SyntaxKind.MinusEqualsToken, ts.SyntaxKind.BarEqualsToken,
  ts.SyntaxKind.AmpersandEqualsToken, ts.SyntaxKind.CaretEqualsToken, ts.SyntaxKind.LessThanLessThanEqualsToken,
  ts.SyntaxKind.GreaterThanGreaterThanEqualsToken, ts.SyntaxKind.GreaterThanGreaterThanGreaterThanEqualsToken,
]);
/**
 * Callees whose statement is a notification: kick, wake, notify, request, signal, doorbell (by the
 * last name of the callee; installing, unbinding or clearing one is not a notification).
 */
const WAKE_CALLEE = /^(?:Atomics\.notify|(?:.*\.)?(?!unbind|bind|set|install|register|clear|check|has|is|get|read)\w*(?:[kK]ick|[wW]ake|[nN]otify|[rR]equest|[sS]ignal|[dD]oorbell)\w*)$/;
/** Callees that only observe: schedule points, history and trace recording. */
const OBSERVER_CALLEE = /^(?:schedPoint|trace\w*|.*\.record|.*\.hist\.\w+|.*Trace\w*)$/;
/** An `if` condition that is only a bug-seed test or a "history on" test. */
const BUG_TEST = /^\(?[\w.]*bugs\s*&\s*BUG\.\w+\)?(?:\s*!==\s*0)?$/;
const HIST_TEST = /^[\w.]*\bhist$/;

/** Every mutation site of one compiled module, in text order. */
export function findMutations(js: string, fileName = 'module.js'): MutationSite[] {
  const sf = ts.createSourceFile(fileName, js, ts.ScriptTarget.ES2022, true, ts.ScriptKind.JS);
  const out: MutationSite[] = [];
  const text = (n: ts.Node): string => n.getText(sf);
  const drop = (op: OperatorName, stmt: ts.Node, what: string): void => {
    out.push({ operator: op, description: `drop ${what}`, edits: [{ start: stmt.getStart(sf), end: stmt.getEnd(), text: ';' }], at: stmt.getStart(sf) });
  };

  const visit = (n: ts.Node): void => {
    if (ts.isIfStatement(n)) {
      const c = text(n.expression);
      if (HIST_TEST.test(c)) {
        if (n.elseStatement) visit(n.elseStatement);
        return;
      }
      const bug = BUG_TEST.test(c);
      const negBug = /^!\s*\(/.test(c) && BUG_TEST.test(c.replace(/^!\s*/, ''));
      if (bug || negBug) {
        // Only the branch the correct model runs is mutated; the condition itself is the seed's.
        const live = bug ? n.elseStatement : n.thenStatement;
        if (live) visit(live);
        return;
      }
      recheck(n);
    }
    if (ts.isConditionalExpression(n) && BUG_TEST.test(text(n.condition))) {
      visit(n.whenFalse);
      return;
    }
    if (ts.isBinaryExpression(n)) binary(n);
    if (ts.isExpressionStatement(n)) statement(n);
    if (ts.isReturnStatement(n) && n.expression) returned(n, n.expression);
    if (ts.isDoStatement(n) && n.expression.kind !== ts.SyntaxKind.FalseKeyword) {
      out.push({ operator: 'drop-recheck', description: `do-while re-check '${clip(text(n.expression))}' -> false`, edits: [{ start: n.expression.getStart(sf), end: n.expression.getEnd(), text: 'false' }], at: n.expression.getStart(sf) });
    }
    if (isStatementList(n)) lockPairs(n.statements);
    ts.forEachChild(n, visit);
  };

  const binary = (n: ts.BinaryExpression): void => {
    const k = n.operatorToken.kind;
    const tok = n.operatorToken;
    const from = tok.getText(sf);
    const flip = FLIP[k];
    if (flip !== undefined && !text(n).includes('BUG.')) {
      const to = ts.tokenToString(flip)!;
      out.push({ operator: 'cond-flip', description: `'${from}' -> '${to}'`, edits: [{ start: tok.getStart(sf), end: tok.getEnd(), text: to }], at: tok.getStart(sf) });
    }
    const swap = SWAP[k];
    if (swap !== undefined) {
      const to = ts.tokenToString(swap)!;
      out.push({ operator: 'logic-swap', description: `'${from}' -> '${to}'`, edits: [{ start: tok.getStart(sf), end: tok.getEnd(), text: to }], at: tok.getStart(sf) });
    }
    if ((k === ts.SyntaxKind.PlusToken || k === ts.SyntaxKind.MinusToken) && ts.isNumericLiteral(n.right) && n.right.text === '1') {
      out.push({ operator: 'off-by-one', description: `'${clip(text(n))}' -> '${clip(text(n.left))}'`, edits: [{ start: n.left.getEnd(), end: n.getEnd(), text: '' }], at: tok.getStart(sf) });
    }
  };

  const statement = (s: ts.ExpressionStatement): void => {
    const e = s.expression;
    if (ts.isCallExpression(e)) {
      const callee = text(e.expression);
      if (OBSERVER_CALLEE.test(callee)) return;
      if (WAKE_CALLEE.test(callee)) drop('drop-wake', s, clip(text(e)));
      else if (ts.isPropertyAccessExpression(e.expression) && text(e.expression.expression) === 'Atomics' && ATOMIC_STORES.has(e.expression.name.text)) {
        drop('drop-store', s, clip(text(e)));
      }
      return;
    }
    if (ts.isBinaryExpression(e) && COMPOUND_ASSIGN.has(e.operatorToken.kind) && ts.isElementAccessExpression(e.left)) {
      drop('drop-store', s, clip(text(e)));
    } else if ((ts.isPostfixUnaryExpression(e) || ts.isPrefixUnaryExpression(e)) && ts.isElementAccessExpression(e.operand)) {
      drop('drop-store', s, clip(text(e)));
    }
  };

  const returned = (r: ts.ReturnStatement, e: ts.Expression): void => {
    const at = e.getStart(sf);
    const put = (to: string): void => {
      out.push({ operator: 'return-value', description: `return ${clip(text(e))} -> return ${clip(to)}`, edits: [{ start: at, end: e.getEnd(), text: to }], at });
    };
    if (e.kind === ts.SyntaxKind.TrueKeyword) put('false');
    else if (e.kind === ts.SyntaxKind.FalseKeyword) put('true');
    else if (ts.isNumericLiteral(e)) put(e.text === '0' ? '1' : '0');
    else if (ts.isPrefixUnaryExpression(e) && e.operator === ts.SyntaxKind.MinusToken && ts.isNumericLiteral(e.operand)) put('0');
    else if (isBooleanShaped(e)) put(`!(${text(e)})`);
    void r;
  };

  const recheck = (n: ts.IfStatement): void => {
    const t = n.thenStatement;
    const last = ts.isBlock(t) ? t.statements[t.statements.length - 1] : t;
    if (last && ts.isContinueStatement(last)) {
      drop('drop-recheck', n, `re-check 'if (${clip(text(n.expression))}) ... continue'`);
    }
  };

  const lockPairs = (list: ts.NodeArray<ts.Statement>): void => {
    for (let i = 0; i < list.length; i++) {
      const lock = lockCall(list[i]!, sf);
      if (!lock || lock.unlock === null) continue;
      for (let j = i + 1; j < list.length; j++) {
        const s = list[j]!;
        const rel = releaseIn(s, lock.unlock, lock.args, sf);
        if (!rel) continue;
        const lockStmt = list[i]!;
        out.push({
          operator: 'drop-lock', description: `drop ${clip(text(lockStmt))} ... ${clip(text(rel))}`,
          edits: [{ start: lockStmt.getStart(sf), end: lockStmt.getEnd(), text: ';' }, { start: rel.getStart(sf), end: rel.getEnd(), text: ';' }],
          at: lockStmt.getStart(sf),
        });
        const prev = list[j - 1]!;
        // Move the release above the statement before it, unless that is the acquire itself or
        // another lock call (swapping two releases keeps every access inside its lock).
        if (rel === s && j - 1 > i && !lockCall(prev, sf) && !isUnlock(prev, sf)) {
          out.push({
            operator: 'early-release', description: `${clip(text(s))} moved above ${clip(text(prev))}`,
            edits: [{ start: prev.getStart(sf), end: s.getEnd(), text: `${text(s)}\n${text(prev)}` }],
            at: s.getStart(sf),
          });
        }
        break;
      }
    }
  };

  visit(sf);
  return out;
}

function isStatementList(n: ts.Node): n is ts.Block | ts.SourceFile | ts.CaseClause | ts.DefaultClause {
  return ts.isBlock(n) || ts.isSourceFile(n) || ts.isCaseClause(n) || ts.isDefaultClause(n);
}

/** `lockX(args)` / `acquire(args)` as a statement: the name of its release and the argument text. */
function lockCall(s: ts.Statement, sf: ts.SourceFile): { unlock: string | null; args: string } | null {
  if (!ts.isExpressionStatement(s) || !ts.isCallExpression(s.expression) || !ts.isIdentifier(s.expression.expression)) return null;
  const name = s.expression.expression.text;
  const args = s.expression.arguments.map((a) => a.getText(sf)).join(', ');
  if (name === 'acquire') return { unlock: 'release', args: s.expression.arguments.slice(0, 2).map((a) => a.getText(sf)).join(', ') };
  const m = /^lock([A-Z]\w*)$/.exec(name);
  return m ? { unlock: `unlock${m[1]}`, args } : null;
}

function isUnlock(s: ts.Statement, sf: ts.SourceFile): boolean {
  return ts.isExpressionStatement(s) && ts.isCallExpression(s.expression) && /^(?:unlock[A-Z]\w*|release)$/.test(s.expression.expression.getText(sf));
}

/**
 * The release statement matching a lock: `s` itself, or the release in the `finally` of a `try`
 * that follows the acquire (the lock-and-release-on-throw idiom).
 */
function releaseIn(s: ts.Statement, unlock: string, args: string, sf: ts.SourceFile): ts.Statement | null {
  const matches = (x: ts.Statement): boolean => {
    if (!ts.isExpressionStatement(x) || !ts.isCallExpression(x.expression)) return false;
    if (x.expression.expression.getText(sf) !== unlock) return false;
    const a = x.expression.arguments.map((y) => y.getText(sf));
    return (unlock === 'release' ? a.slice(0, 2) : a).join(', ') === args;
  };
  if (matches(s)) return s;
  if (ts.isTryStatement(s) && s.finallyBlock) return s.finallyBlock.statements.find(matches) ?? null;
  return null;
}

function isBooleanShaped(e: ts.Expression): boolean {
  if (ts.isParenthesizedExpression(e)) return isBooleanShaped(e.expression);
  if (ts.isPrefixUnaryExpression(e)) return e.operator === ts.SyntaxKind.ExclamationToken;
  if (!ts.isBinaryExpression(e)) return false;
  return FLIP[e.operatorToken.kind] !== undefined || SWAP[e.operatorToken.kind] !== undefined;
}

function clip(s: string): string {
  const one = s.replace(/\s+/g, ' ');
  return one.length > 60 ? `${one.slice(0, 57)}...` : one;
}

/** Apply a site's edits to the original text. */
export function applyEdits(js: string, edits: readonly Edit[]): string {
  let out = '';
  let pos = 0;
  for (const e of edits) {
    if (e.start < pos) throw new RangeError(`overlapping edits at ${e.start}`);
    out += js.slice(pos, e.start) + e.text;
    pos = e.end;
  }
  return out + js.slice(pos);
}

/** Parse errors of a mutated text (a mutant that does not parse is "invalid"). */
export function syntaxErrors(js: string): string[] {
  const sf = ts.createSourceFile('mutant.js', js, ts.ScriptTarget.ES2022, false, ts.ScriptKind.JS);
  const diags = (sf as unknown as { parseDiagnostics?: readonly ts.Diagnostic[] }).parseDiagnostics ?? [];
  return diags.map((d) => ts.flattenDiagnosticMessageText(d.messageText, '\n'));
}
