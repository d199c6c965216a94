/*
 * The editor helper shared by the dialogs of @deferrable/node-red-vector-pipeline.
 *
 * Each node's .html loads it (and the generated limits.js) with
 *   <script src="resources/@deferrable/node-red-vector-pipeline/editor.js"></script>
 * Node-RED (1.3+) serves the package's resources/ folder there, and loads such
 * scripts before the node's own inline script runs. Every dialog loads it, so it
 * defines itself once.
 *
 * What it holds, written once: the store / collection / "made by another tool" /
 * name rows of the dialogs, the t() helper, the number and collection-name
 * validators (limits from lib/schemas.ts, through limits.js), and the typed
 * inputs (msg, flow, global, env) of collection, expected count, query, topK and
 * timeout.
 */
(function () {
    "use strict";
    if (window.VectorPipelineEditor) { return; }

    /** Sources read by the runtime for each message (see nodes/shared/typed-inputs.ts). */
    var DYNAMIC_SOURCES = ["msg", "flow", "global", "env"];

    function isBlank(v) {
        return v === undefined || v === null || String(v).trim() === "";
    }

    /** A catalog text of this node type: t(node, "errors.collection"). */
    function t(node, key, substitutions) {
        return node._def._(node.type + "." + key, substitutions);
    }

    /** The limits generated from lib/schemas.ts (resources/limits.js). */
    function limits() {
        if (!window.VectorPipelineLimits) { throw new Error("vector pipeline: resources/limits.js is not loaded"); }
        return window.VectorPipelineLimits;
    }

    /**
     * The value a validator must judge: the live form field while this very node is
     * being edited (so changing one field re-judges the fields that depend on it),
     * else the saved property.
     */
    function current(node, property) {
        var editing = $("#node-input-store").attr("data-vp-node") === node.id;
        var field = $("#node-input-" + property);
        if (editing && field.length) {
            return field.attr("type") === "checkbox" ? field.prop("checked") : field.val();
        }
        return node[property];
    }

    /** Is the property set to be read per message (msg, flow, global, env)? */
    function isDynamic(node, property) {
        return DYNAMIC_SOURCES.indexOf(current(node, property + "Type")) !== -1;
    }

    /** Does a number satisfy a rule {integer?, min?, above?, max?} of lib/schemas.ts? */
    function meetsRule(v, rule) {
        if (isBlank(v)) { return false; }
        var n = Number(String(v).trim());
        if (!isFinite(n)) { return false; }
        if (rule.integer && Math.floor(n) !== n) { return false; }
        if (rule.min !== undefined && n < rule.min) { return false; }
        if (rule.above !== undefined && n <= rule.above) { return false; }
        if (rule.max !== undefined && n > rule.max) { return false; }
        return true;
    }

    /** A collection of this package: the rule of lib/backends/collection-name.ts. */
    function isCollectionName(v) {
        var rule = limits().collectionName;
        var name = String(v);
        return name.length <= rule.maxLength && new RegExp(rule.pattern).test(name);
    }

    /**
     * A validator of a number property: its limits from lib/schemas.ts. Options:
     * blank (empty allowed: the runtime's default), typed (a typed input: a value
     * read per message only needs naming what to read).
     */
    function numberValidator(property, errorKey, options) {
        options = options || {};
        return function (v, opt) {
            if (options.typed && isDynamic(this, property)) { return !isBlank(v) || t(this, "typed.missing"); }
            if (isBlank(v)) { return options.blank ? true : t(this, errorKey); }
            var rule = limits()[this.type][property];
            return meetsRule(v, rule) || t(this, errorKey);
        };
    }

    /**
     * The collection validator: empty means msg.collection; a collection of this
     * package follows the package's rule; another tool's follows that store's own
     * rule, checked by the runtime (only control characters are refused here).
     */
    function collectionValidator(options) {
        options = options || {};
        return function (v, opt) {
            if (isDynamic(this, "collection")) { return !isBlank(v) || t(this, "typed.missing"); }
            var name = String(v === undefined || v === null ? "" : v);
            if (options.watches && current(this, "origin") === "other") {
                return !/[\u0000-\u001f]/.test(name) || t(this, "errors.otherName");
            }
            return name === "" || isCollectionName(name) || t(this, "errors.collection");
        };
    }

    /** The defaults of the rows written here, to merge into a node's defaults. */
    function rowDefaults(options) {
        var defaults = {
            name: { value: "" },
            store: { value: "", type: "vector-store", required: true },
            collection: { value: "", validate: collectionValidator(options) },
            collectionType: { value: "str" },
            // The shape this version saves: lib/config-versions.ts migrates older ones.
            configVersion: { value: limits().configVersion }
        };
        if (options && options.watches) {
            defaults.origin = { value: "package" };
            defaults.preset = { value: "" };
            defaults.tableSchema = { value: "" };
            defaults.vectorColumn = { value: "" };
            defaults.indexName = { value: "" };
            defaults.databasePath = { value: "" };
        }
        return defaults;
    }

    // The rows, written once. TYPE becomes the node type (its catalog holds the texts).
    var ROWS = {
        store:
            '<div class="form-row">' +
            '<label for="node-input-store"><i class="fa fa-database"></i> <span data-i18n="TYPE.label.store"></span></label> ' +
            '<input type="text" id="node-input-store">' +
            '</div>',
        collection:
            '<div class="form-row">' +
            '<label for="node-input-collection"><i class="fa fa-folder-o"></i> <span data-i18n="TYPE.label.collection"></span></label> ' +
            '<input type="text" id="node-input-collection" style="width: 70%;" data-i18n="[placeholder]TYPE.placeholder.collection">' +
            '<input type="hidden" id="node-input-collectionType">' +
            '</div>',
        // "Made by another tool": the fields the store has (pgvector's layout, schema
        // and index, a vector column, LanceDB's database path); shown by showWatchFields.
        watch:
            '<div class="form-row">' +
            '<label for="node-input-origin"><i class="fa fa-sitemap"></i> <span data-i18n="TYPE.label.origin"></span></label> ' +
            '<select id="node-input-origin" style="width: 70%;">' +
            '<option value="package" data-i18n="TYPE.origin.package"></option>' +
            '<option value="other" data-i18n="TYPE.origin.other"></option>' +
            '</select>' +
            '</div>' +
            '<div class="vp-watch-pgvector">' +
            '<div class="form-row">' +
            '<label for="node-input-preset"><i class="fa fa-clone"></i> <span data-i18n="TYPE.label.preset"></span></label> ' +
            '<select id="node-input-preset" style="width: 70%;">' +
            '<option value="" data-i18n="TYPE.preset.none"></option>' +
            '<option value="langchain" data-i18n="TYPE.preset.langchain"></option>' +
            '<option value="llamaindex" data-i18n="TYPE.preset.llamaindex"></option>' +
            '</select>' +
            '</div>' +
            '<div class="form-row">' +
            '<label for="node-input-tableSchema"><i class="fa fa-folder-open-o"></i> <span data-i18n="TYPE.label.tableSchema"></span></label> ' +
            '<input type="text" id="node-input-tableSchema" placeholder="public">' +
            '</div>' +
            '<div class="form-row">' +
            '<label for="node-input-indexName"><i class="fa fa-list-ol"></i> <span data-i18n="TYPE.label.indexName"></span></label> ' +
            '<input type="text" id="node-input-indexName" data-i18n="[placeholder]TYPE.placeholder.indexName">' +
            '</div>' +
            '</div>' +
            '<div class="form-row vp-watch-column">' +
            '<label for="node-input-vectorColumn"><i class="fa fa-columns"></i> <span data-i18n="TYPE.label.vectorColumn"></span></label> ' +
            '<input type="text" id="node-input-vectorColumn" data-i18n="[placeholder]TYPE.placeholder.vectorColumn">' +
            '</div>' +
            '<div class="form-row vp-watch-lancedb">' +
            '<label for="node-input-databasePath"><i class="fa fa-folder"></i> <span data-i18n="TYPE.label.databasePath"></span></label> ' +
            '<input type="text" id="node-input-databasePath" data-i18n="[placeholder]TYPE.placeholder.databasePath">' +
            '</div>' +
            '<div class="form-tips vp-watch-other"><span data-i18n="TYPE.tip.other"></span></div>',
        name:
            '<div class="form-row">' +
            '<label for="node-input-name"><i class="fa fa-tag"></i> <span data-i18n="TYPE.label.name"></span></label> ' +
            '<input type="text" id="node-input-name" data-i18n="[placeholder]TYPE.placeholder.name">' +
            '</div>'
    };

    /** Replaces each <div data-vp-row="..."></div> of a node's template by its row. */
    function expandTemplate(type) {
        var template = $('script[data-template-name="' + type + '"]');
        if (!template.length) { return false; }
        var html = template.html().replace(/<div data-vp-row="(\w+)"><\/div>/g, function (whole, row) {
            if (!ROWS[row]) { throw new Error("vector pipeline: no row named " + row); }
            return ROWS[row].replace(/TYPE/g, type);
        });
        template.html(html);
        return true;
    }

    /** Shows the "made by another tool" fields the selected store has. */
    function showWatchFields() {
        var other = $("#node-input-origin").val() === "other";
        var store = RED.nodes.node($("#node-input-store").val());
        var pgvector = other && (!store || store.backend === "pgvector");
        $(".vp-watch-other").toggle(other);
        $(".vp-watch-pgvector").toggle(pgvector);
        // A LanceDB table may have several vector columns; a pgvector layout fixes its own.
        var lancedb = Boolean(other && store && store.backend === "lancedb");
        $(".vp-watch-column").toggle((pgvector && !$("#node-input-preset").val()) || lancedb);
        $(".vp-watch-lancedb").toggle(lancedb);
    }

    /** A typed input: a literal ("str" or "num") or a value read per message from msg, flow, global or env. */
    function typedInput(property, literal) {
        $("#node-input-" + property).typedInput({
            default: literal,
            typeField: $("#node-input-" + property + "Type"),
            types: [literal].concat(DYNAMIC_SOURCES)
        });
    }

    /**
     * oneditprepare of the dialogs: marks the form as this node's, turns the typed
     * properties into typed inputs, wires the "made by another tool" rows.
     * options: {typed: {collection: "str", timeout: "num", ...}, watches: boolean}
     */
    function prepare(node, options) {
        $("#node-input-store").attr("data-vp-node", node.id);
        var typed = options.typed || {};
        Object.keys(typed).forEach(function (property) {
            // Flows saved before typed inputs have no source: what was typed in.
            if (!node[property + "Type"]) { $("#node-input-" + property + "Type").val(typed[property]); }
            typedInput(property, typed[property]);
        });
        if (options.watches) {
            // Flows saved before "made by another tool" existed have no origin: this package's.
            if (!node.origin) { $("#node-input-origin").val("package"); }
            $("#node-input-origin, #node-input-store, #node-input-preset").on("change", function () {
                showWatchFields();
                // Re-judge the collection: the rule depends on who made it.
                $("#node-input-collection").trigger("change");
            });
            showWatchFields();
        }
    }

    /** How the node shows its collection on the canvas: "docs", "flow.target", "langchain:items". */
    function collectionLabel(node) {
        if (!node.collection) { return ""; }
        if (DYNAMIC_SOURCES.indexOf(node.collectionType) !== -1) { return node.collectionType + "." + node.collection; }
        return (node.origin === "other" && node.preset ? node.preset + ":" : "") + node.collection;
    }

    /**
     * Registers a node type of this package: expands its template's shared rows,
     * merges the shared defaults (the node's own win), category and color.
     */
    function registerType(type, definition, options) {
        options = options || {};
        if (!expandTemplate(type)) {
            // Not yet in the page (an editor that appends scripts first): expand once it is.
            setTimeout(function () { expandTemplate(type); }, 0);
        }
        definition.defaults = $.extend(rowDefaults(options), definition.defaults);
        definition.category = definition.category || "vector store";
        definition.color = definition.color || "#7fb7df";
        RED.nodes.registerType(type, definition);
    }

    window.VectorPipelineEditor = {
        DYNAMIC_SOURCES: DYNAMIC_SOURCES,
        isBlank: isBlank,
        t: t,
        limits: limits,
        current: current,
        isDynamic: isDynamic,
        meetsRule: meetsRule,
        isCollectionName: isCollectionName,
        numberValidator: numberValidator,
        collectionValidator: collectionValidator,
        expandTemplate: expandTemplate,
        showWatchFields: showWatchFields,
        prepare: prepare,
        collectionLabel: collectionLabel,
        registerType: registerType
    };
})();
