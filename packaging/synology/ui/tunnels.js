// The Tunnels app in DSM 7: a window of DSM's own whose body is the app's
// page (index.cgi, same origin). DSM 7.2 shows url apps only in a tab of
// their own, so the app is a window class, as DSM's own examples do it.
Ext.namespace("SYNO.SDS.autossh");

Ext.define("SYNO.SDS.autossh.Tunnels", {
    extend: "SYNO.SDS.AppInstance",
    appWindowName: "SYNO.SDS.autossh.TunnelsWindow",
    constructor: function () {
        this.callParent(arguments);
    }
});

Ext.define("SYNO.SDS.autossh.TunnelsWindow", {
    extend: "SYNO.SDS.AppWindow",
    constructor: function (config) {
        // A new address each time: no cached page.
        var src = "webman/3rdparty/autossh/index.cgi?ts=" + Date.now();
        this.callParent([Ext.apply({
            layout: "fit",
            width: 900,
            height: 600,
            minWidth: 420,
            minHeight: 320,
            resizable: true,
            title: "Tunnels",
            html: '<iframe src="' + src + '" title="Tunnels" style="width:100%;height:100%;border:0"></iframe>'
        }, config)]);
    }
});
