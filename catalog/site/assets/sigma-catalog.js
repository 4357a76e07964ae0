/* sigma-catalog: copy buttons and the rule search box. No dependencies; rule data only ever reaches
   the page through textContent and element attributes set one by one, never through innerHTML. */
(function () {
  "use strict";
  var script = document.currentScript;
  var scriptUrl = script && script.src ? script.src : location.href;
  var indexUrl = new URL("search-index.json", scriptUrl);
  var siteRoot = new URL("__SIGMA_CATALOG_SCRIPT_TO_ROOT__", scriptUrl)  /* written by the build: catalog/site/addresses.py */;
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
    var blocks = document.querySelectorAll(".sc-code, .sc-query");
    Array.prototype.forEach.call(blocks, function (block) {
      var code = block.querySelector("pre code");
      if (!code || block.querySelector(".sc-copy")) return;
      var button = el("button", "sc-copy", "Copy");
      button.type = "button";
      button.title = block.classList.contains("sc-query") ? "Copy the query to the clipboard" : "Copy the rule to the clipboard";
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

  /* -- search (catalog/site/search.py): title, id, techniques, tactics, log source, authors, tags,
     description and indicator values; the query lives in the Search page's address (find/?q=) -------- */
  var SEARCH_FACETS = [["level", "level"], ["status", "status"], ["logsource", "log source"], ["tactics", "tactic"]];

  function loadIndex() {
    if (!indexPromise) {
      indexPromise = fetch(indexUrl.href).then(function (response) {
        if (!response.ok) throw new Error("HTTP " + response.status);
        return response.json();
      }).then(function (data) {
        var values = data.values.map(function (v) { return String(v).toLowerCase(); });
        var names = data.names || [];
        var rules = data.rules.map(function (r) {
          var words = (r[10] || []).map(function (i) { return names[i]; });
          var tactics = (r[9] || []).map(function (i) { return names[i]; });
          var logsource = r[8] >= 0 ? names[r[8]] : "";
          return { slug: r[0], title: r[1], id: r[2], level: r[3], kind: r[4], techniques: r[5], values: r[6],
                   status: r[7] || "", logsource: logsource, tactics: tactics, words: words, description: r[11] || "",
                   titleLower: String(r[1]).toLowerCase(), idLower: String(r[2]).toLowerCase(),
                   techLower: r[5].map(function (t) { return String(t).toLowerCase(); }),
                   namesLower: [logsource].concat(tactics, words).join("\n").toLowerCase(),
                   descriptionLower: String(r[11] || "").toLowerCase() };
        });
        return { page: data.page, values: values, rawValues: data.values, rules: rules };
      });
    }
    return indexPromise;
  }

  function scoreTerm(index, rule, term, valueHits) {
    /* [score, why] of one query word for one rule; title matches rank first after an exact id */
    if (rule.idLower && rule.idLower === term) return [100, "id"];
    if (rule.slug === term) return [90, null];
    if (rule.idLower && term.length >= 4 && rule.idLower.indexOf(term) === 0) return [60, "id"];
    var at = rule.titleLower.indexOf(term);
    if (at !== -1) return [at === 0 || /\W/.test(rule.titleLower.charAt(at - 1)) ? 50 : 40, null];
    for (var k = 0; k < rule.techLower.length; k++) {
      var tech = rule.techLower[k];
      if (tech === term || tech.indexOf(term + ".") === 0 || (term.length >= 3 && tech.indexOf(term) === 0)) {
        return [tech === term ? 35 : 30, rule.techniques[k]];
      }
    }
    if (rule.namesLower.indexOf(term) !== -1) {
      var name = [rule.logsource].concat(rule.tactics, rule.words).filter(function (n) { return n.toLowerCase().indexOf(term) !== -1; })[0];
      return [15, name];
    }
    for (var v = 0; v < rule.values.length; v++) {
      if (valueHits.has(rule.values[v])) return [10, index.rawValues[rule.values[v]]];
    }
    if (rule.descriptionLower.indexOf(term) !== -1) return [5, "description"];
    return null;
  }

  function search(index, query) {
    var terms = query.toLowerCase().split(/\s+/).filter(Boolean);
    if (!terms.length) return [];
    var valueHits = terms.map(function (term) {
      var hits = new Set();
      for (var i = 0; i < index.values.length; i++) if (index.values[i].indexOf(term) !== -1) hits.add(i);
      return hits;
    });
    var results = [];
    index.rules.forEach(function (rule) {
      var score = 0, why = null;
      for (var t = 0; t < terms.length; t++) {
        var found = scoreTerm(index, rule, terms[t], valueHits[t]);
        if (!found) return;
        score += found[0];
        why = why || found[1];
      }
      results.push({ rule: rule, score: score, why: why });
    });
    results.sort(function (a, b) { return b.score - a.score || a.rule.title.localeCompare(b.rule.title); });
    return results;
  }

  function ruleHref(index, slug) {
    return new URL(index.page.replace("{slug}", encodeURIComponent(slug)), siteRoot).href;
  }

  function findHref(query) {
    var url = new URL("find/", siteRoot);
    url.searchParams.set("q", query);
    return url.href;
  }

  function resultItem(index, result) {
    var rule = result.rule, item = el("li", "sc-search-result");
    var link = el("a", null, rule.title);
    link.href = ruleHref(index, rule.slug);
    item.appendChild(link);
    var facts = el("span", "sc-search-facts");
    if (rule.level) facts.appendChild(el("span", "sc-level sc-level-" + rule.level.replace(/[^a-z]/g, ""), rule.level));
    if (rule.logsource) facts.appendChild(el("span", "sc-search-logsource", rule.logsource));
    if (result.why && result.why !== rule.logsource) facts.appendChild(el("span", "sc-search-why", result.why));
    item.appendChild(facts);
    return item;
  }

  function facetControls(box, results, chosen, rerun) {
    var holder = box.querySelector(".sc-search-facets");
    if (!holder) return;
    holder.textContent = "";
    if (!results.length) return;
    var rows = results.map(function (result) { return result.rule; });
    SEARCH_FACETS.forEach(function (facet) {
      var select = facetSelect(rows, facet[0], facet[1]);
      if (!select && !chosen[facet[0]]) return;
      if (!select) { select = el("select", "sc-list-facet"); select.name = facet[0]; select.appendChild(el("option", null, "Any " + facet[1])).value = ""; }
      if (chosen[facet[0]] && !Array.prototype.some.call(select.options, function (o) { return o.value === chosen[facet[0]]; })) {
        select.appendChild(el("option", null, chosen[facet[0]] + " (0)")).value = chosen[facet[0]];
      }
      select.value = chosen[facet[0]] || "";
      select.addEventListener("change", function () { chosen[facet[0]] = select.value; rerun(); });
      holder.appendChild(select);
    });
  }

  function setupBox(box) {
    var input = box.querySelector(".sc-search-input");
    var list = box.querySelector(".sc-search-results");
    var status = box.querySelector(".sc-search-status");
    if (!input || !list) return;
    var onPage = box.classList.contains("sc-search-page");
    var limit = onPage ? 200 : 12;
    var pending = null, chosen = {};
    function show(message) { if (status) status.textContent = message; }
    function remember(query) {
      if (!onPage) return;
      var url = new URL(location.href);
      url.search = "";
      if (query) url.searchParams.set("q", query);
      SEARCH_FACETS.forEach(function (facet) { if (chosen[facet[0]]) url.searchParams.set(facet[0], chosen[facet[0]]); });
      history.replaceState(null, "", url.href);
    }
    function run() {
      var query = input.value.trim();
      remember(query);
      loadIndex().then(function (index) {
        list.textContent = "";
        if (!query) { show(""); facetControls(box, [], chosen, run); return; }
        var all = search(index, query);
        var results = all.filter(function (result) {
          return SEARCH_FACETS.every(function (facet) {
            var want = chosen[facet[0]];
            return !want || valuesOf(result.rule, facet[0]).indexOf(want) !== -1;
          });
        });
        facetControls(box, all, chosen, run);
        show(results.length ? (results.length < all.length ? results.length + " of " + all.length : results.length) +
             (all.length === 1 ? " rule" : " rules") : "No rule matches.");
        results.slice(0, limit).forEach(function (result) { list.appendChild(resultItem(index, result)); });
        if (results.length > limit) {
          var more = el("li", "sc-search-more"), link = el("a", null, "… " + (results.length - limit) + " more");
          link.href = findHref(query);
          more.appendChild(link);
          list.appendChild(more);
        }
      }, function (error) { show("The search index could not be loaded (" + error.message + ")."); });
    }
    input.addEventListener("focus", function () { loadIndex().catch(function () {}); }, { once: true });
    input.addEventListener("input", function () { clearTimeout(pending); pending = setTimeout(run, 120); });
    input.addEventListener("keydown", function (event) {
      if (event.key === "Enter") {
        event.preventDefault();
        var query = input.value.trim();
        if (onPage) { clearTimeout(pending); run(); }
        else if (query) location.href = findHref(query);
      } else if (event.key === "Escape") { input.value = ""; list.textContent = ""; show(""); }
    });
    if (onPage) {
      var params = new URLSearchParams(location.search);
      SEARCH_FACETS.forEach(function (facet) { if (params.get(facet[0])) chosen[facet[0]] = params.get(facet[0]); });
      if (params.get("q")) { input.value = params.get("q"); run(); }
    }
  }

  function addHeaderBox() {
    var header = document.querySelector(".md-header__inner");
    if (!header || header.querySelector(".sc-search-header")) return;
    var box = el("div", "sc-search sc-search-header");
    box.setAttribute("role", "search");
    var input = el("input", "sc-search-input");
    input.type = "search";
    input.placeholder = "Find rules";
    input.title = "Find rules (press / to get here, Enter for all results)";
    input.setAttribute("aria-label", "Find rules by title, id, technique, author, log source or indicator");
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

  function focusSearchOnSlash(event) {
    /* "/" focuses the search box, unless the reader is typing somewhere */
    if (event.key !== "/" || event.ctrlKey || event.metaKey || event.altKey) return;
    var target = event.target;
    if (target && (target.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(target.tagName))) return;
    var box = document.querySelector(".sc-search-page .sc-search-input") || document.querySelector(".sc-search-header .sc-search-input");
    if (box) { event.preventDefault(); event.stopPropagation(); box.focus(); box.select(); }
  }

  /* == rule lists: filter and sort (catalog/site/lists.py; the rows of long lists from rules.json) == */
  var LIST_FACETS = [["level", "level"], ["status", "status"], ["logsource", "log source"], ["folder", "folder"], ["tactics", "tactic"]];
  var LIST_ORDER = { level: ["critical", "high", "medium", "low", "informational"],
                     status: ["stable", "test", "experimental", "deprecated", "unsupported"] };
  var LIST_SORTS = [["", "File order"], ["title", "Title"], ["level", "Level"], ["date", "Newest"], ["status", "Status"],
                    ["logsource", "Log source"], ["folder", "Folder"]];
  var RETIRED = ["deprecated", "unsupported"];
  var LIST_CONTROLS_FROM = 8;
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
    if (!positions) {
      /* a short list reads at a glance: controls from LIST_CONTROLS_FROM rows, or when retired rules are to hide */
      var retired = rows.some(function (row) { return RETIRED.indexOf(row.status) !== -1; });
      if (rows.length >= LIST_CONTROLS_FROM || retired) listControls(box, rows);
      return;
    }
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

  // --- query tabs (rule pages): without the script every panel shows, each under its heading ---
  function setupTabs(box) {
    var tabs = box.querySelectorAll("[role=tab]");
    var select = function (chosen) {
      Array.prototype.forEach.call(tabs, function (tab) {
        var on = tab === chosen;
        tab.setAttribute("aria-selected", on ? "true" : "false");
        tab.tabIndex = on ? 0 : -1;
        var panel = document.getElementById(tab.getAttribute("aria-controls"));
        if (panel) panel.hidden = !on;
      });
    };
    Array.prototype.forEach.call(tabs, function (tab, index) {
      tab.addEventListener("click", function () { select(tab); });
      tab.addEventListener("keydown", function (event) {
        var step = event.key === "ArrowRight" ? 1 : event.key === "ArrowLeft" ? -1 : 0;
        if (!step) return;
        var next = tabs[(index + step + tabs.length) % tabs.length];
        select(next);
        next.focus();
      });
    });
    box.classList.add("sc-tabs-ready");
    if (tabs.length) select(tabs[0]);
  }

  /* -- rule page: the Copy action, folded stages opened by their anchors (issue 11) ----------- */
  function setupRulePage() {
    Array.prototype.forEach.call(document.querySelectorAll("button.sc-copy-file[data-src]"), function (button) {
      if (!navigator.clipboard) return;
      button.hidden = false;
      button.addEventListener("click", function () {
        fetch(button.getAttribute("data-src"))
          .then(function (response) { return response.text(); })
          .then(function (text) { return navigator.clipboard.writeText(text); })
          .then(function () { button.textContent = "Copied"; }, function () { button.textContent = "Copy failed"; });
      });
    });
    function openTarget() {
      var id = decodeURIComponent(location.hash.slice(1));
      var target = id && document.getElementById(id);
      for (var node = target; node; node = node.parentElement) {
        if (node.tagName === "DETAILS") node.open = true;
      }
      if (target && target.tagName === "DETAILS") target.scrollIntoView();
    }
    window.addEventListener("hashchange", openTarget);
    openTarget();
  }

  /* -- problems page: the findings of one code, chosen in the table of codes (#code=...) ------- */
  function setupProblems(box) {
    var rows = box.querySelectorAll("tr[data-code]");
    var notice = el("p", "sc-problem-filter");
    box.parentNode.insertBefore(notice, box);
    Array.prototype.forEach.call(document.querySelectorAll(".sc-problem-hint"), function (hint) { hint.hidden = false; });
    function apply() {
      var match = /^#code=(.+)$/.exec(location.hash), code = "";
      try { code = match ? decodeURIComponent(match[1]) : ""; } catch (e) { code = ""; }
      var shown = 0;
      Array.prototype.forEach.call(rows, function (row) {
        var on = !code || row.getAttribute("data-code") === code;
        row.hidden = !on;
        if (on) shown += 1;
      });
      Array.prototype.forEach.call(document.querySelectorAll(".sc-problem-codes a[href^='#code=']"), function (link) {
        if (code && link.getAttribute("href") === "#code=" + code) link.setAttribute("aria-current", "true");
        else link.removeAttribute("aria-current");
      });
      notice.hidden = !code;
      notice.textContent = "";
      if (!code) return;
      notice.appendChild(document.createTextNode(shown + (shown === 1 ? " finding" : " findings") + " listed for "));
      notice.appendChild(el("code", "", code));
      notice.appendChild(document.createTextNode(". "));
      var all = el("a", "", "Show every finding");
      all.href = "#findings";
      notice.appendChild(all);
    }
    window.addEventListener("hashchange", apply);
    apply();
  }

  function init() {
    setupRulePage();
    Array.prototype.forEach.call(document.querySelectorAll("[data-sc-problems]"), setupProblems);
    Array.prototype.forEach.call(document.querySelectorAll("[data-sc-tabs]"), setupTabs);
    addCopyButtons();
    addHeaderBox();
    document.addEventListener("keydown", focusSearchOnSlash, true);
    Array.prototype.forEach.call(document.querySelectorAll("[data-sc-search], .sc-search-header"), setupBox);
    Array.prototype.forEach.call(document.querySelectorAll("[data-sc-list]"), setupList);
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
