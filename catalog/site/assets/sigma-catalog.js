/* sigma-catalog: copy buttons and the rule search box. No dependencies; rule data only ever reaches
   the page through textContent and element attributes set one by one, never through innerHTML. */
(function () {
  "use strict";
  var script = document.currentScript;
  var scriptUrl = script && script.src ? script.src : location.href;
  var indexUrl = new URL("search-index.json", scriptUrl);
  var siteRoot = new URL("../../", scriptUrl);
  var indexPromise = null;

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  /* -- copy buttons on rule bodies ------------------------------------------------------------ */
  function themeCopies() {
    /* Material's content.code.copy feature puts its own button on every code block */
    var config = document.getElementById("__config");
    if (!config) return false;
    try { return (JSON.parse(config.textContent).features || []).indexOf("content.code.copy") !== -1; }
    catch (e) { return false; }
  }

  function addCopyButtons() {
    if (themeCopies()) return;
    var blocks = document.querySelectorAll(".sc-code");
    Array.prototype.forEach.call(blocks, function (block) {
      var code = block.querySelector("pre code");
      if (!code || block.querySelector(".sc-copy")) return;
      var button = el("button", "sc-copy", "Copy");
      button.type = "button";
      button.title = "Copy the rule to the clipboard";
      button.addEventListener("click", function () {
        var text = code.textContent;
        var done = function () { button.textContent = "Copied"; setTimeout(function () { button.textContent = "Copy"; }, 1500); };
        if (navigator.clipboard && navigator.clipboard.writeText) {
          navigator.clipboard.writeText(text).then(done, function () { fallbackCopy(text); done(); });
        } else { fallbackCopy(text); done(); }
      });
      block.insertBefore(button, block.firstChild);
    });
  }
  function fallbackCopy(text) {
    var area = el("textarea");
    area.value = text;
    area.setAttribute("readonly", "");
    area.style.position = "fixed"; area.style.opacity = "0";
    document.body.appendChild(area);
    area.select();
    try { document.execCommand("copy"); } catch (e) { /* nothing more to try */ }
    document.body.removeChild(area);
  }

  /* -- search ------------------------------------------------------------------------------------ */
  function loadIndex() {
    if (!indexPromise) {
      indexPromise = fetch(indexUrl.href).then(function (response) {
        if (!response.ok) throw new Error("HTTP " + response.status);
        return response.json();
      }).then(function (data) {
        var values = data.values.map(function (v) { return String(v).toLowerCase(); });
        var rules = data.rules.map(function (r) {
          return { slug: r[0], title: r[1], id: r[2], level: r[3], kind: r[4], techniques: r[5], values: r[6],
                   titleLower: String(r[1]).toLowerCase(), idLower: String(r[2]).toLowerCase(),
                   techLower: r[5].map(function (t) { return String(t).toLowerCase(); }) };
        });
        return { page: data.page, values: values, rawValues: data.values, rules: rules };
      });
    }
    return indexPromise;
  }

  function search(index, query) {
    var terms = query.toLowerCase().split(/\s+/).filter(Boolean);
    if (!terms.length) return [];
    var valueHits = terms.map(function (term) {
      var hits = new Map();
      for (var i = 0; i < index.values.length; i++) if (index.values[i].indexOf(term) !== -1) hits.set(i, true);
      return hits;
    });
    var results = [];
    index.rules.forEach(function (rule) {
      var score = 0, why = null;
      for (var t = 0; t < terms.length; t++) {
        var term = terms[t], matched = false;
        if (rule.idLower && rule.idLower === term) { score += 100; matched = true; why = why || "id"; }
        else if (rule.slug === term) { score += 90; matched = true; }
        else if (rule.idLower && term.length >= 4 && rule.idLower.indexOf(term) === 0) { score += 60; matched = true; why = why || "id"; }
        if (!matched) {
          for (var k = 0; k < rule.techLower.length; k++) {
            var tech = rule.techLower[k];
            if (tech === term || tech.indexOf(term + ".") === 0 || (term.length >= 3 && tech.indexOf(term) === 0)) {
              score += tech === term ? 50 : 30; matched = true; why = why || rule.techniques[k]; break;
            }
          }
        }
        if (!matched && rule.titleLower.indexOf(term) !== -1) { score += 20; matched = true; }
        if (!matched) {
          var hits = valueHits[t];
          for (var v = 0; v < rule.values.length; v++) {
            if (hits.has(rule.values[v])) { score += 10; matched = true; why = why || index.rawValues[rule.values[v]]; break; }
          }
        }
        if (!matched) return;
      }
      results.push({ rule: rule, score: score, why: why });
    });
    results.sort(function (a, b) { return b.score - a.score || a.rule.title.localeCompare(b.rule.title); });
    return results;
  }

  function ruleHref(index, slug) {
    return new URL(index.page.replace("{slug}", encodeURIComponent(slug)), siteRoot).href;
  }

  function setupBox(box) {
    var input = box.querySelector(".sc-search-input");
    var list = box.querySelector(".sc-search-results");
    var status = box.querySelector(".sc-search-status");
    if (!input || !list) return;
    var limit = box.classList.contains("sc-search-header") ? 12 : 100;
    var pending = null;
    function show(message) { if (status) status.textContent = message; }
    function run() {
      var query = input.value.trim();
      loadIndex().then(function (index) {
        list.textContent = "";
        if (!query) { show(""); return; }
        var results = search(index, query);
        show(results.length ? results.length + (results.length === 1 ? " rule" : " rules") : "No rule matches.");
        results.slice(0, limit).forEach(function (result) {
          var item = el("li", "sc-search-result");
          var link = el("a", null, result.rule.title);
          link.href = ruleHref(index, result.rule.slug);
          item.appendChild(link);
          var detail = [result.rule.level, result.why].filter(Boolean).join(" · ");
          if (detail) item.appendChild(el("span", "sc-search-why", detail));
          list.appendChild(item);
        });
        if (results.length > limit) list.appendChild(el("li", "sc-search-more", "… " + (results.length - limit) + " more"));
      }, function (error) { show("The search index could not be loaded (" + error.message + ")."); });
    }
    input.addEventListener("focus", function () { loadIndex().catch(function () {}); }, { once: true });
    input.addEventListener("input", function () { clearTimeout(pending); pending = setTimeout(run, 120); });
    input.addEventListener("keydown", function (event) {
      if (event.key === "Enter") {
        var first = list.querySelector("a");
        if (first) { event.preventDefault(); location.href = first.href; }
      } else if (event.key === "Escape") { input.value = ""; list.textContent = ""; show(""); }
    });
    var params = new URLSearchParams(location.search);
    if (box.classList.contains("sc-search-page") && params.get("q")) { input.value = params.get("q"); run(); }
  }

  function addHeaderBox() {
    var header = document.querySelector(".md-header__inner");
    if (!header || header.querySelector(".sc-search-header")) return;
    var box = el("div", "sc-search sc-search-header");
    box.setAttribute("role", "search");
    var input = el("input", "sc-search-input");
    input.type = "search";
    input.placeholder = "Find rules";
    input.setAttribute("aria-label", "Find rules by title, id, technique or indicator");
    input.autocomplete = "off";
    input.spellcheck = false;
    box.appendChild(input);
    box.appendChild(el("p", "sc-search-status"));
    box.appendChild(el("ol", "sc-search-results"));
    var anchor = header.querySelector(".md-header__source") || null;
    header.insertBefore(box, anchor);
    document.addEventListener("click", function (event) {
      if (!box.contains(event.target)) box.querySelector(".sc-search-results").textContent = "";
    });
  }

  /* == rule lists: filter and sort (catalog/site/lists.py; the rows of long lists from rules.json) == */
  var LIST_FACETS = [["level", "level"], ["status", "status"], ["logsource", "log source"], ["folder", "folder"], ["tactics", "tactic"]];
  var LIST_ORDER = { level: ["critical", "high", "medium", "low", "informational"],
                     status: ["stable", "test", "experimental", "deprecated", "unsupported"] };
  var LIST_SORTS = [["", "File order"], ["title", "Title"], ["level", "Level"], ["date", "Newest"], ["status", "Status"],
                    ["logsource", "Log source"], ["folder", "Folder"]];
  var RETIRED = ["deprecated", "unsupported"];
  var listRowsPromise = null;

  function loadListRows() {
    if (!listRowsPromise) {
      listRowsPromise = fetch(new URL("rules.json", scriptUrl).href).then(function (response) {
        if (!response.ok) throw new Error("HTTP " + response.status);
        return response.json();
      });
    }
    return listRowsPromise;
  }

  function listRow(tr, position) {
    var cells = tr.cells, link = cells[0].querySelector("a");
    return { tr: tr, position: position, title: (link || cells[0]).textContent.trim(), logsource: cells[1].textContent,
             level: cells[2].textContent, status: cells[3].textContent, date: cells[4].textContent,
             folder: tr.getAttribute("data-folder") || "",
             tactics: (tr.getAttribute("data-tactics") || "").split("|").filter(Boolean) };
  }

  function listTr(data, item) {
    /* item: [slug, title, kind, level, status, log source, folder index, [tactic indexes], date] */
    var tr = el("tr"), first = el("td"), link = el("a", null, item[1]);
    tr.setAttribute("data-folder", data.folders[item[6]]);
    tr.setAttribute("data-tactics", item[7].map(function (i) { return data.tactics[i]; }).join("|"));
    link.href = new URL(data.page.replace("{slug}", encodeURIComponent(item[0])), siteRoot).href;
    first.appendChild(link);
    if (item[2] !== "rule") { first.appendChild(document.createTextNode(" ")); first.appendChild(el("span", "sc-kind", item[2])); }
    tr.appendChild(first);
    [item[5], item[3], item[4], item[8]].forEach(function (value) { tr.appendChild(el("td", null, value)); });
    return tr;
  }

  function valuesOf(row, facet) { return facet === "tactics" ? row.tactics : [row[facet]]; }

  function facetSelect(rows, facet, label) {
    var counts = new Map();
    rows.forEach(function (row) {
      valuesOf(row, facet).forEach(function (value) { if (value) counts.set(value, (counts.get(value) || 0) + 1); });
    });
    if (counts.size < 2) return null;
    var order = LIST_ORDER[facet], names = Array.from(counts.keys());
    names.sort(function (a, b) {
      if (order) return (order.indexOf(a) + 1 || 99) - (order.indexOf(b) + 1 || 99) || a.localeCompare(b);
      return counts.get(b) - counts.get(a) || a.localeCompare(b);
    });
    var select = el("select", "sc-list-facet");
    select.setAttribute("aria-label", "Filter by " + label);
    select.name = facet;
    select.appendChild(el("option", null, "Any " + label)).value = "";
    names.forEach(function (name) { select.appendChild(el("option", null, name + " (" + counts.get(name) + ")")).value = name; });
    return select;
  }

  function compareRows(key) {
    var order = LIST_ORDER[key];
    return function (a, b) {
      var result;
      if (!key) result = 0;
      else if (order) result = (order.indexOf(a[key]) + 1 || 99) - (order.indexOf(b[key]) + 1 || 99);
      else if (key === "date") result = b.date.localeCompare(a.date);
      else result = a[key].localeCompare(b[key]);
      return result || a.position - b.position;
    };
  }

  function listControls(box, rows) {
    var tbody = box.querySelector("tbody"), count = box.querySelector(".sc-list-count");
    var form = el("form", "sc-list-controls");
    form.addEventListener("submit", function (event) { event.preventDefault(); });
    var text = el("input", "sc-list-text");
    text.type = "search"; text.placeholder = "Filter by title"; text.setAttribute("aria-label", "Filter the rules by title");
    form.appendChild(text);
    var selects = LIST_FACETS.map(function (facet) {
      var select = facetSelect(rows, facet[0], facet[1]);
      if (select) form.appendChild(select);
      return select;
    }).filter(Boolean);
    var sort = el("select", "sc-list-sort");
    sort.setAttribute("aria-label", "Sort the rules");
    LIST_SORTS.forEach(function (option) { sort.appendChild(el("option", null, "Sort: " + option[1])).value = option[0]; });
    form.appendChild(sort);
    var retired = rows.filter(function (row) { return RETIRED.indexOf(row.status) !== -1; }).length;
    var toggle = null;
    if (retired && retired < rows.length) {
      var label = el("label", "sc-list-toggle");
      toggle = el("input");
      toggle.type = "checkbox";
      label.appendChild(toggle);
      label.appendChild(document.createTextNode(" show deprecated and unsupported (" + retired + ")"));
      form.appendChild(label);
    }
    function apply() {
      var words = text.value.toLowerCase().split(/\s+/).filter(Boolean), shown = 0;
      rows.forEach(function (row) {
        var title = row.title.toLowerCase();
        var visible = words.every(function (word) { return title.indexOf(word) !== -1; }) &&
          selects.every(function (select) { return !select.value || valuesOf(row, select.name).indexOf(select.value) !== -1; });
        var chosenStatus = selects.some(function (select) { return select.name === "status" && select.value; });
        if (toggle && !toggle.checked && !chosenStatus && RETIRED.indexOf(row.status) !== -1) visible = false;
        row.tr.hidden = !visible;
        if (visible) shown++;
      });
      count.textContent = (shown === rows.length ? "" : shown + " of ") + rows.length + (rows.length === 1 ? " rule" : " rules") +
        (toggle && !toggle.checked ? " (deprecated and unsupported hidden)" : "") + ".";
    }
    function order() {
      var sorted = rows.slice().sort(compareRows(sort.value)), fragment = document.createDocumentFragment();
      sorted.forEach(function (row) { fragment.appendChild(row.tr); });
      tbody.appendChild(fragment);
    }
    form.addEventListener("input", apply);
    form.addEventListener("change", function (event) { if (event.target === sort) order(); else apply(); });
    box.insertBefore(form, count);
    apply();
  }

  function setupList(box) {
    var tbody = box.querySelector("tbody"), positions = box.querySelector(".sc-list-positions");
    if (!tbody) return;
    var rows = Array.prototype.map.call(tbody.rows, listRow);
    if (!positions) { listControls(box, rows); return; }
    loadListRows().then(function (data) {
      var fragment = document.createDocumentFragment();
      rows = JSON.parse(positions.textContent).map(function (index, position) {
        var tr = listTr(data, data.rules[index]);
        fragment.appendChild(tr);
        return listRow(tr, position);
      });
      tbody.textContent = "";
      tbody.appendChild(fragment);
      listControls(box, rows);
    }, function (error) {
      box.querySelector(".sc-list-count").textContent += " The rest could not be loaded (" + error.message + ").";
      listControls(box, rows);
    });
  }

  function init() {
    addCopyButtons();
    addHeaderBox();
    Array.prototype.forEach.call(document.querySelectorAll("[data-sc-search], .sc-search-header"), setupBox);
    Array.prototype.forEach.call(document.querySelectorAll("[data-sc-list]"), setupList);
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
