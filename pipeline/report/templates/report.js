/* vertebro report: patient table (sort, filter, pages) and evidence.
 *
 * Data comes from the JSON blocks #vb-meta, #vb-patients, #vb-evidence.
 * Note text is untrusted: every element is built with createElement and
 * every piece of text is set with textContent / Text nodes, never innerHTML.
 * Evidence is parsed on first use and rendered only for expanded rows.
 */
(function () {
  "use strict";

  function readJson(id) {
    var node = document.getElementById(id);
    return node ? JSON.parse(node.textContent) : null;
  }

  var meta = readJson("vb-meta") || {};
  var rows = readJson("vb-patients") || [];
  var evidence = null;

  function evidenceFor(id) {
    if (evidence === null) evidence = readJson("vb-evidence") || {};
    return Object.prototype.hasOwnProperty.call(evidence, id) ? evidence[id] : null;
  }

  var tierRank = {};
  var tierLabel = {};
  (meta.tiers || []).forEach(function (tier, index) {
    tierRank[tier.key] = index;
    tierLabel[tier.key] = tier.label;
  });
  var conceptLabel = meta.concepts || {};
  var flagInfo = {};
  (meta.flags || []).forEach(function (flag) { flagInfo[flag.key] = flag; });

  var numberFormat = new Intl.NumberFormat("en");
  var collator = new Intl.Collator("en", { numeric: true, sensitivity: "base" });

  rows.forEach(function (row) {
    row.reasonText = row.reasons.join("; ");
    row.hay = [
      row.id,
      tierLabel[row.tier] || row.tier,
      row.levels.map(function (level) { return level[0]; }).join(" "),
      row.reasonText,
      row.flags.map(function (key) { return (flagInfo[key] || {}).label || key; }).join(" "),
    ].join(" ").toLowerCase();
  });

  /* ------------------------------------------------------------------ */
  /* elements                                                            */

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function classToken(value) {
    return String(value).replace(/[^A-Za-z0-9_-]/g, "_");
  }

  function formatScore(score) {
    if (score === null || score === undefined) return "—";
    return (Math.round(score * 10) / 10).toString();
  }

  /* ------------------------------------------------------------------ */
  /* sorting and filtering                                               */

  function compareNumbers(a, b) { return a - b; }
  function compareText(a, b) { return collator.compare(a, b); }

  var columns = {
    id: { value: function (row) { return row.id; }, compare: compareText, first: 1 },
    tier: {
      value: function (row) { return row.tier in tierRank ? tierRank[row.tier] : 999; },
      compare: compareNumbers, first: 1,
    },
    score: { value: function (row) { return row.score; }, compare: compareNumbers, first: -1 },
    levels: {
      value: function (row) { return row.levels.length ? row.rank : null; },
      compare: compareNumbers, first: 1,
    },
    date: { value: function (row) { return row.date || null; }, compare: compareText, first: -1 },
    notes: { value: function (row) { return row.notes; }, compare: compareNumbers, first: -1 },
    reasons: { value: function (row) { return row.reasonText || null; }, compare: compareText, first: 1 },
  };

  function defaultOrder(a, b) {
    return columns.tier.compare(columns.tier.value(a), columns.tier.value(b))
      || (b.score === null ? -1 : 0) - (a.score === null ? -1 : 0)
      || (b.score || 0) - (a.score || 0)
      || compareText(a.id, b.id);
  }

  var state = {
    query: "",
    tier: "",
    key: "tier",
    direction: 1,
    page: 0,
    size: meta.pageSize || 25,
    expanded: new Set(),
  };
  rows.forEach(function (row) { if (row.tier === "candidate") state.expanded.add(row.id); });

  var view = rows.slice();

  function refreshView() {
    var query = state.query.trim().toLowerCase();
    var terms = query ? query.split(/\s+/) : [];
    view = rows.filter(function (row) {
      if (state.tier && row.tier !== state.tier) return false;
      for (var i = 0; i < terms.length; i++) {
        if (row.hay.indexOf(terms[i]) < 0) return false;
      }
      return true;
    });
    var column = columns[state.key];
    var direction = state.direction;
    view.sort(function (a, b) {
      var x = column.value(a);
      var y = column.value(b);
      var missingX = x === null || x === undefined;
      var missingY = y === null || y === undefined;
      if (missingX !== missingY) return missingX ? 1 : -1; // missing values last, either way
      var order = missingX ? 0 : column.compare(x, y) * direction;
      return order || defaultOrder(a, b);
    });
    var pages = Math.max(1, Math.ceil(view.length / state.size));
    if (state.page >= pages) state.page = pages - 1;
  }

  /* ------------------------------------------------------------------ */
  /* table                                                               */

  var table = document.getElementById("patient-table");
  var tbody = table.tBodies[0];
  var columnCount = table.tHead.rows[0].cells.length;

  function cell(className, child) {
    var td = el("td", className);
    if (child !== undefined) td.append(child);
    return td;
  }

  function rowElement(row) {
    var tr = el("tr", "row t-" + classToken(row.tier));
    tr.dataset.person = row.id;
    tr.dataset.tier = row.tier;

    var toggle = el("button", "toggle");
    toggle.type = "button";
    toggle.setAttribute("aria-label", "Evidence for patient " + row.id);
    tr.append(cell("col-toggle", toggle));

    tr.append(cell("col-id", row.id));
    var badge = el("span", "badge t-" + classToken(row.tier), tierLabel[row.tier] || row.tier);
    tr.append(cell("col-tier", badge));
    var score = cell("col-score num", formatScore(row.score));
    if (row.score !== null) score.dataset.value = String(row.score);
    tr.append(score);

    var levels = cell("col-levels");
    row.levels.forEach(function (level) {
      var pill = el("span", "lv" + (level[1] ? " lv-" + classToken(level[1]) : ""), level[0]);
      if (level[1]) pill.title = level[1];
      levels.append(pill);
    });
    tr.append(levels);
    tr.append(cell("col-date", row.date || "—"));
    tr.append(cell("col-notes num", row.notes === null ? "—" : numberFormat.format(row.notes)));

    var flags = cell("col-flags");
    row.flags.forEach(function (key) {
      var info = flagInfo[key] || { label: key, contra: false };
      flags.append(el("span", "tag" + (info.contra ? " contra" : ""), info.label));
    });
    tr.append(flags);

    var reasons = el("div", "reasons-text", row.reasonText);
    reasons.title = row.reasonText;
    tr.append(cell("col-reasons", reasons));

    setExpanded(tr, toggle, state.expanded.has(row.id));
    toggle.addEventListener("click", function () {
      var open = !state.expanded.has(row.id);
      if (open) {
        state.expanded.add(row.id);
        tr.after(detailElement(row));
      } else {
        state.expanded.delete(row.id);
        var next = tr.nextElementSibling;
        if (next && next.classList.contains("detail")) next.remove();
      }
      setExpanded(tr, toggle, open);
    });
    return tr;
  }

  function setExpanded(tr, toggle, open) {
    toggle.setAttribute("aria-expanded", open ? "true" : "false");
    toggle.textContent = open ? "▾" : "▸";
    tr.classList.toggle("open", open);
  }

  function render() {
    var start = state.page * state.size;
    var slice = view.slice(start, start + state.size);
    var fragment = document.createDocumentFragment();
    slice.forEach(function (row) {
      fragment.append(rowElement(row));
      if (state.expanded.has(row.id)) fragment.append(detailElement(row));
    });
    if (!slice.length) {
      var empty = el("tr", "empty");
      var td = el("td", null, "No patients match the filter.");
      td.colSpan = columnCount;
      empty.append(td);
      fragment.append(empty);
    }
    tbody.replaceChildren(fragment);

    var pages = Math.max(1, Math.ceil(view.length / state.size));
    document.getElementById("page-info").textContent = "Page " + (state.page + 1) + " of " + pages;
    document.getElementById("page-prev").disabled = state.page === 0;
    document.getElementById("page-next").disabled = state.page >= pages - 1;
    var shown = view.length ? (start + 1) + "–" + (start + slice.length) : "0";
    var summary = "Showing " + shown + " of " + numberFormat.format(view.length) + " patients";
    if (view.length !== rows.length) summary += " (filtered from " + numberFormat.format(rows.length) + ")";
    document.getElementById("result-count").textContent = summary;

    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th) {
      if (!th.dataset.key) return;
      var sorted = th.dataset.key === state.key;
      th.setAttribute("aria-sort", sorted ? (state.direction > 0 ? "ascending" : "descending") : "none");
    });
  }

  /* ------------------------------------------------------------------ */
  /* evidence                                                            */

  function fact(list, label, value) {
    if (value === null || value === undefined || value === "" ||
        (Array.isArray(value) && !value.length)) return;
    var item = el("div");
    item.append(el("dt", null, label), el("dd", null, Array.isArray(value) ? value.join(", ") : value));
    list.append(item);
  }

  function detailElement(row) {
    var tr = el("tr", "detail");
    tr.dataset.person = row.id;
    var td = el("td");
    td.colSpan = columnCount;
    var body = el("div", "detail-body");

    var facts = el("dl", "detail-facts");
    fact(facts, "Candidate levels", row.cand);
    fact(facts, "Acute", row.acute);
    fact(facts, "Indeterminate", row.indet);
    fact(facts, "Chronic", row.chronic);
    fact(facts, "Index date", row.date);
    fact(facts, "Latest INR", row.inr);
    fact(facts, "Latest platelets (10^9/L)", row.plt);
    if (facts.childElementCount) body.append(facts);

    if (row.reasons.length) {
      body.append(el("h3", null, "Reasons"));
      var reasons = el("ul", "reason-list");
      row.reasons.forEach(function (reason) { reasons.append(el("li", null, reason)); });
      body.append(reasons);
    }

    body.append(el("h3", null, "Evidence"));
    var stats = row.ev || { total: 0, state: "none" };
    var data = evidenceFor(row.id);
    if (stats.state === "omitted") {
      body.append(el("p", "cap-note",
        "Evidence for this patient (" + numberFormat.format(stats.total) +
        " mentions) is not embedded, to keep the page small; see report.xlsx or mentions.parquet."));
    } else if (!data || !data.items.length) {
      body.append(el("p", "cap-note", "No mentions of the screened concepts."));
    } else {
      body.append(evidenceList(data.items));
      if (stats.state === "capped") {
        body.append(el("p", "cap-note",
          "Showing " + numberFormat.format(stats.shown) + " of " + numberFormat.format(stats.total) +
          " mentions (at most " + meta.maxEvidence + " selected, the most relevant first)."));
      }
    }
    td.append(body);
    tr.append(td);
    return tr;
  }

  function mentionTitle(mention) {
    var label = conceptLabel[mention.c] || mention.c;
    return [label].concat(mention.a).join(" · ");
  }

  /* Items come newest note first, sentences of one note together and in
   * reading order: one box per note, one line per sentence. */
  function evidenceList(items) {
    var fragment = document.createDocumentFragment();
    var figure = null;
    items.forEach(function (item) {
      if (figure === null || figure.dataset.note !== item.note) {
        figure = noteElement(item);
        fragment.append(figure);
      }
      figure.append(sentenceElement(item));
    });
    return fragment;
  }

  function noteElement(item) {
    var figure = el("figure", "evidence");
    figure.dataset.note = item.note;
    var caption = el("figcaption");
    caption.append(el("span", "note-date", item.date || "undated"));
    if (item.title) caption.append(el("span", "note-title", item.title));
    if (item.modality && (item.title || "").toUpperCase().indexOf(item.modality.toUpperCase()) < 0) {
      caption.append(el("span", "note-modality", item.modality));
    }
    caption.append(el("span", "note-id", "note " + item.note));
    figure.append(caption);
    return figure;
  }

  function sentenceElement(item) {
    var sentence = el("div", "sentence");
    // "other" is the sectionizer's default: not worth a label.
    sentence.append(el("div", "section-label", item.section === "other" ? "" : item.section || ""));
    var content = el("div", "sentence-body");
    var quote = el("blockquote", "snippet");
    item.seg.forEach(function (segment) {
      var text = segment[0];
      var index = segment[1];
      if (index < 0) {
        quote.append(document.createTextNode(text));
        return;
      }
      var mention = item.m[index];
      var mark = el("mark", "hl c-" + classToken(mention.c) + " st-" + classToken(mention.st), text);
      mark.dataset.concept = mention.c;
      mark.title = mentionTitle(mention);
      quote.append(mark);
    });
    content.append(quote);

    var list = el("ul", "mentions");
    item.m.forEach(function (mention) {
      if (mention.c === "LEVEL") return;
      var li = el("li");
      li.append(el("span", "chip c-" + classToken(mention.c), conceptLabel[mention.c] || mention.c));
      if (mention.x) li.append(el("q", null, mention.x));
      mention.a.forEach(function (attribute) {
        var state = ["negated", "uncertain", "hypothetical", "family"].indexOf(attribute) >= 0;
        li.append(el("span", "attr" + (state ? " state" : ""), attribute));
      });
      if (mention.lost) li.append(el("span", "attr warn", "not located in the sentence"));
      list.append(li);
    });
    if (list.childElementCount) content.append(list);
    sentence.append(content);
    return sentence;
  }

  /* ------------------------------------------------------------------ */
  /* controls                                                            */

  function update(resetPage) {
    if (resetPage) state.page = 0;
    refreshView();
    render();
  }

  document.getElementById("filter-text").addEventListener("input", function (event) {
    state.query = event.target.value;
    update(true);
  });
  document.getElementById("filter-tier").addEventListener("change", function (event) {
    state.tier = event.target.value;
    update(true);
  });
  var pageSize = document.getElementById("page-size");
  pageSize.value = String(state.size);
  pageSize.addEventListener("change", function (event) {
    state.size = parseInt(event.target.value, 10) || 25;
    update(true);
  });
  document.getElementById("page-prev").addEventListener("click", function () {
    if (state.page > 0) { state.page -= 1; render(); }
  });
  document.getElementById("page-next").addEventListener("click", function () {
    if ((state.page + 1) * state.size < view.length) { state.page += 1; render(); }
  });
  document.getElementById("expand-page").addEventListener("click", function () {
    view.slice(state.page * state.size, (state.page + 1) * state.size)
      .forEach(function (row) { state.expanded.add(row.id); });
    render();
  });
  document.getElementById("collapse-all").addEventListener("click", function () {
    state.expanded.clear();
    render();
  });
  Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th) {
    var key = th.dataset.key;
    if (!key || !columns[key]) return;
    th.querySelector("button").addEventListener("click", function () {
      if (state.key === key) {
        state.direction = -state.direction;
      } else {
        state.key = key;
        state.direction = columns[key].first;
      }
      update(true);
    });
  });

  update(true);
})();
