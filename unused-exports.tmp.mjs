// ad-hoc: exports of src/ that no other file (src, test, bench, scripts) imports
import ts from 'typescript';
import { readdirSync, readFileSync } from 'node:fs';
import { join, resolve, dirname, relative } from 'node:path';
const root = process.cwd();
const walk = (d) => readdirSync(d, { withFileTypes: true }).flatMap((e) => e.isDirectory() ? walk(join(d, e.name)) : e.name.endsWith('.ts') ? [join(d, e.name)] : []);
const files = ['src', 'test', 'bench', 'scripts'].flatMap((d) => walk(join(root, d)));
const used = new Map(); // file -> Set(names) ; '*' for namespace
const mark = (f, n) => { if (!used.has(f)) used.set(f, new Set()); used.get(f).add(n); };
for (const file of files) {
  const sf = ts.createSourceFile(file, readFileSync(file, 'utf8'), ts.ScriptTarget.Latest, true);
  const resolveSpec = (s) => s.startsWith('.') ? resolve(dirname(file), s.replace(/\.js$/, '.ts')) : undefined;
  const visit = (node) => {
    if ((ts.isImportDeclaration(node) || ts.isExportDeclaration(node)) && node.moduleSpecifier && ts.isStringLiteral(node.moduleSpecifier)) {
      const target = resolveSpec(node.moduleSpecifier.text);
      if (target) {
        if (ts.isImportDeclaration(node)) {
          const c = node.importClause;
          if (c?.name) mark(target, 'default');
          if (c?.namedBindings) {
            if (ts.isNamespaceImport(c.namedBindings)) mark(target, '*');
            else for (const el of c.namedBindings.elements) mark(target, (el.propertyName ?? el.name).text);
          }
        } else {
          if (!node.exportClause) mark(target, '*');
          else if (ts.isNamedExports(node.exportClause)) for (const el of node.exportClause.elements) mark(target, (el.propertyName ?? el.name).text);
        }
      }
    }
    if (ts.isCallExpression(node) && node.expression.kind === ts.SyntaxKind.ImportKeyword && ts.isStringLiteral(node.arguments[0])) {
      const target = resolveSpec(node.arguments[0].text);
      if (target) {
        // (await import('x')).name  or const { a } = await import('x')
        let p = node.parent; while (p && (ts.isAwaitExpression(p) || ts.isParenthesizedExpression(p))) p = p.parent;
        if (p && ts.isPropertyAccessExpression(p)) mark(target, p.name.text);
        else if (p && ts.isVariableDeclaration(p) && ts.isObjectBindingPattern(p.name)) for (const el of p.name.elements) mark(target, (el.propertyName ?? el.name).getText());
        else mark(target, '*');
      }
    }
    if (ts.isImportTypeNode(node) && ts.isLiteralTypeNode(node.argument) && ts.isStringLiteral(node.argument.literal)) {
      const target = resolveSpec(node.argument.literal.text);
      if (target) mark(target, node.qualifier ? node.qualifier.getText().split('.')[0] : '*');
    }
    ts.forEachChild(node, visit);
  };
  visit(sf);
}
for (const file of files.filter((f) => relative(root, f).startsWith('src/'))) {
  const sf = ts.createSourceFile(file, readFileSync(file, 'utf8'), ts.ScriptTarget.Latest, true);
  const u = used.get(file) ?? new Set();
  if (u.has('*')) continue;
  for (const st of sf.statements) {
    const mods = ts.canHaveModifiers(st) ? ts.getModifiers(st) : undefined;
    if (!mods?.some((m) => m.kind === ts.SyntaxKind.ExportKeyword)) continue;
    const names = ts.isVariableStatement(st) ? st.declarationList.declarations.map((d) => d.name.getText()) : st.name ? [st.name.text] : [];
    for (const n of names) if (!u.has(n)) {
      const text = sf.text; const count = text.split(new RegExp(`\\b${n}\\b`)).length - 1;
      console.log(`${relative(root, file)}: ${n}${count > 1 ? '  (used in its own file)' : ''}`);
    }
  }
}
