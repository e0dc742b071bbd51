// Building page content from API data with text nodes only, so no value can ever become markup.

export function element(tag, content = "", className = "") {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (content instanceof Node) node.append(content);
  else node.textContent = String(content);
  return node;
}
